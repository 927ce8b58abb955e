"""Images in: decode any supported file to RGB uint8, and the one preprocessing function.

`preprocess` is the single path from a decoded scan to the model's input tensor; training,
prediction, explainers and metrics all call it. Keras EfficientNet models rescale and normalise
inside the network, so the tensor stays in 0-255 (scaling to [0,1] here would be a bug).

WebP (what images saved from the web often are) is decoded by Pillow, the other raster formats by OpenCV.

Decoding is bounded, because files come from users: the dimensions are read from the header before
anything is decoded (Pillow's lazy open, tifffile for TIFFs Pillow cannot parse, pydicom's
Rows x Columns x NumberOfFrames x SamplesPerPixel without touching the pixels), and a file declaring
more than `MAX_PIXELS` pixels or larger than `MAX_FILE_BYTES` is refused. Every decoder failure
(OpenCV, Pillow, tifffile, pydicom, NumPy) becomes an `ImageDecodeError` with a one-line reason; so do
images with NaN/infinite values and images with no variation (every pixel the same), which carry
nothing to classify. Scaling to uint8 works in float32, never on a float64 copy of the image.
"""
from __future__ import annotations

import io
import logging
import re
import stat
import struct
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import ImageDecodeError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
DICOM_EXTENSIONS = {".dcm", ".dicom"}
MAX_PIXELS = 50_000_000          # per decoded image (DICOM: every frame and sample counted); ~7000 x 7000
MAX_FILE_BYTES = 256 * 1024 * 1024
HEADER_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "DIB", "TIFF", "WEBP"}  # what Pillow may identify
PILLOW_DECODES = {"WEBP"}  # decoded by Pillow (OpenCV builds differ in WebP support); the rest by OpenCV
FORMATS_TEXT = "JPEG, PNG, WebP, BMP, TIFF or DICOM"  # the upload box and every decode message name them alike
_SUPPORTED = f"supported: {FORMATS_TEXT}"

# Pillow warns above its own limit (89 MP); our budget is checked explicitly below it, so the warning is noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# A corrupt TIFF is reported by our one-line error; Pillow's and tifffile's own notes about it are noise.
warnings.filterwarnings("ignore", message="Corrupt EXIF data", module="PIL")
logging.getLogger("tifffile").setLevel(logging.ERROR)


def is_dicom_file(data: bytes, name: str) -> bool:
    """DICOM by its magic bytes; by the extension only when the content is no known image format."""
    if data[128:132] == b"DICM":
        return True
    if Path(name).suffix.lower() not in DICOM_EXTENSIONS:
        return False
    try:
        with Image.open(io.BytesIO(data)):
            return False  # a JPEG/PNG/... named .dcm: the content decides
    except Exception:  # not an image Pillow knows (or a bomb): try it as a DICOM without preamble
        return True


def _over_budget(name: str, pixels: int, what: str) -> ImageDecodeError:
    return ImageDecodeError(f"{name}: {what} declares {pixels:,} pixels, over the limit of {MAX_PIXELS:,} "
                            "(a decompression bomb or not a single MRI slice)")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale any numeric image to uint8 by its own range (16-bit PNG/TIFF, float data), in float32.

    A constant image becomes zeros, NaN/inf pixels black (the input gate refuses both)."""
    if array.dtype == np.uint8:
        return array
    finite = np.isfinite(array) if array.dtype.kind == "f" else None
    if finite is not None and not finite.all():  # NaN/inf become black; the input gate refuses such images
        array = np.where(finite, array, np.min(array[finite]) if finite.any() else 0.0)
    lo, hi = float(np.min(array)), float(np.max(array))
    if not hi > lo:
        return np.zeros(array.shape, np.uint8)
    out = array.astype(np.float32)  # the one full-size working copy; everything below is in place
    out -= np.float32(lo)
    out *= np.float32(255.0 / (hi - lo))
    out += np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def _check_values(array: np.ndarray, name: str) -> None:
    """Refuse pixel types that are not numbers. NaN/inf and blank images decode (NaN as black) and are refused by
    the input gate (`core.model.gate`), whose refusal is an answer with its reason rather than an error."""
    if array.dtype.kind not in "uif":
        raise ImageDecodeError(f"{name}: unsupported pixel type {array.dtype}")


def _as_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or min(array.shape[:2]) < 8:
        raise ImageDecodeError(f"{name}: unsupported image shape {array.shape}")
    _check_values(array, name)
    array = _to_uint8(array)  # before replicating grey to RGB: the scaling touches a third of the data
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def dicom_pixel_budget(ds: object, name: str) -> int:
    """Pixels the DICOM header declares (frames x rows x columns x samples), or ImageDecodeError."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageDecodeError(f"{name}: the DICOM file holds no image (no pixel data; e.g. a report or structured "
                               "document)")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: the DICOM header has no valid Rows/Columns/NumberOfFrames ({exc})") from exc
    if min(rows, columns, frames, samples) < 1:
        raise ImageDecodeError(f"{name}: the DICOM header declares an empty image ({frames} x {rows} x {columns})")
    pixels = rows * columns * frames * samples
    if pixels > MAX_PIXELS:
        raise _over_budget(name, pixels, f"the DICOM header ({frames} frames x {rows} x {columns} x {samples})")
    return pixels


def _modality_float32(pixels: np.ndarray, ds: object) -> np.ndarray:
    """Stored values -> modality values (rescale slope/intercept) in float32; pydicom's LUT path if a table."""
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(pixels, ds), np.float32)
    values = pixels.astype(np.float32)
    slope, intercept = getattr(ds, "RescaleSlope", None), getattr(ds, "RescaleIntercept", None)
    if slope is not None and intercept is not None:
        values *= np.float32(float(slope))
        values += np.float32(float(intercept))
    return values


def _window_float32(values: np.ndarray, ds: object) -> np.ndarray:
    """VOI windowing (PS3.3 C.11.2.1.2, the formulas of pydicom's apply_windowing) in float32, in place.

    A VOI LUT table goes through pydicom (rare, and such tables are small)."""
    if "VOILUTSequence" in ds:
        from pydicom.pixels import apply_voi_lut

        return np.asarray(apply_voi_lut(values, ds), np.float32)
    center = ds["WindowCenter"].value
    width = ds["WindowWidth"].value
    center = float(center[0] if ds["WindowCenter"].VM > 1 else center)
    width = float(width[0] if ds["WindowWidth"].VM > 1 else width)
    function = str(getattr(ds, "VOILUTFunction", "LINEAR") or "LINEAR").upper()
    bits = int(ds.BitsStored)
    if int(getattr(ds, "PixelRepresentation", 0)) == 0:
        y_min, y_max = 0.0, float(2 ** bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = getattr(ds, "RescaleSlope", None), getattr(ds, "RescaleIntercept", None)
    if slope is not None and intercept is not None:
        y_min, y_max = y_min * float(slope) + float(intercept), y_max * float(slope) + float(intercept)
    y_range = y_max - y_min
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError("Window Width must be > 0 for SIGMOID windowing")
        values -= np.float32(center)
        values *= np.float32(-4.0 / width)
        np.exp(values, out=values)
        values += np.float32(1.0)
        np.divide(np.float32(y_range), values, out=values)
        values += np.float32(y_min)
        return values
    if function not in ("LINEAR", "LINEAR_EXACT"):
        raise ValueError(f"unsupported VOI LUT Function {function!r}")
    if function == "LINEAR":
        if width < 1:
            raise ValueError("Window Width must be >= 1 for LINEAR windowing")
        center, width = center - 0.5, width - 1
    elif width <= 0:
        raise ValueError("Window Width must be > 0 for LINEAR_EXACT windowing")
    below = values <= np.float32(center - width / 2)
    above = values > np.float32(center + width / 2)
    values -= np.float32(center)
    values *= np.float32(y_range / width) if width else np.float32(0)
    values += np.float32(0.5 * y_range + y_min)
    values[below] = y_min
    values[above] = y_max
    return values


def _head_bytes(path: str | Path, size: int) -> bytes:
    """The first `size` bytes of a regular file within the size limit (b"" otherwise): enough to recognise a
    format without reading a file that the decoder will refuse anyway."""
    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return b""
        with Path(path).open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def dicom_modality(source: str | Path | bytes) -> str | None:
    """The DICOM header's Modality (e.g. 'MR', 'CT'), read without decoding pixels; None when the file is not
    DICOM or has no Modality. Lets the input gate refuse a CT or X-ray before any pixel is decoded."""
    name = str(source) if isinstance(source, (str, Path)) else ""
    data = _head_bytes(source, 132) if isinstance(source, (str, Path)) else bytes(source)
    if not data or not is_dicom_file(data, name):
        return None
    import pydicom

    try:  # a path is read as a stream up to the pixel data, never whole
        ds = pydicom.dcmread(str(source) if isinstance(source, (str, Path)) else io.BytesIO(data), force=True,
                             stop_before_pixels=True, specific_tags=["Modality"])
    except Exception:  # a corrupt header: the decoder reports it with its own message
        return None
    value = str(getattr(ds, "Modality", "") or "").strip().upper()
    return value or None


def non_finite_fraction(source: str | Path | bytes) -> float:
    """Share of NaN/inf values in a float TIFF's raw pixels (0 for integer images and unreadable files).

    The decoder maps any image to uint8 by its own range, which silently turns NaN into a picture; the input
    gate asks this (`core.io.scan.Scan.non_finite_share` carries it from the one decode of an upload).
    """
    try:
        data, name = read_bytes(source)
        if is_dicom_file(data, name):
            return 0.0
        return decode_raster(data, name)[1]
    except ImageDecodeError:
        return 0.0


def read_dicom(data: bytes, name: str) -> Any:
    """The pydicom dataset of a DICOM file's bytes (pixels not yet decoded), or ImageDecodeError."""
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - pydicom is a listed requirement
        raise ImageDecodeError(f"{name}: DICOM support needs pydicom ({exc})") from exc
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types for corrupt files
        raise ImageDecodeError(f"{name}: not a readable DICOM file ({type(exc).__name__}: {_first_line(exc)})") from exc


def dicom_pixels(ds: Any, name: str) -> np.ndarray:
    """RGB uint8 pixels of a DICOM dataset (the middle frame of a multi-frame one): modality LUT, VOI window,
    MONOCHROME1 inverted; the header's pixel budget is checked before any pixel is decoded."""
    dicom_pixel_budget(ds, name)
    try:
        pixels = ds.pixel_array
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
        if photometric.startswith("MONOCHROME"):
            if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 and pixels.ndim == 3:
                pixels = pixels[len(pixels) // 2]
            values = _modality_float32(pixels, ds)
            if "WindowCenter" in ds and "WindowWidth" in ds:
                values = _window_float32(values, ds)
            image = _as_rgb(values, name)
            return 255 - image if photometric == "MONOCHROME1" else image
        if pixels.ndim == 4:
            pixels = pixels[len(pixels) // 2]
        return _as_rgb(pixels, name)
    except ImageDecodeError:
        raise
    except Exception as exc:  # pydicom/NumPy raise many types for corrupt, inconsistent or compressed data
        raise ImageDecodeError(f"{name}: cannot read DICOM pixel data ({type(exc).__name__}: "
                               f"{_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _probe(data: bytes, name: str) -> str:
    """Read the format and dimensions from the header (nothing decoded); refuse unknown formats and bombs.

    Returns the format Pillow names (e.g. "PNG", "WEBP")."""
    size = fmt = None
    try:
        with Image.open(io.BytesIO(data)) as im:
            size, fmt = im.size, im.format
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit: far over ours
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        raise _over_budget(name, int(declared.group(1)) if declared else 2 * Image.MAX_IMAGE_PIXELS,
                           "the image header") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error):
        if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
            size, fmt = _probe_tiff(data, name), "TIFF"
    if size is None:
        raise ImageDecodeError(f"{name}: not a readable image ({_SUPPORTED})")
    if fmt not in HEADER_FORMATS:
        raise ImageDecodeError(f"{name}: unsupported image format {fmt} ({_SUPPORTED})")
    width, height = size
    if width * height > MAX_PIXELS:
        raise _over_budget(name, width * height, f"the {fmt} header ({width} x {height})")
    return fmt


def _probe_tiff(data: bytes, name: str) -> tuple[int, int] | None:
    """(width, height) of a TIFF's first page from tifffile (float/multi-sample TIFFs Pillow cannot open)."""
    try:
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            return int(page.imagewidth), int(page.imagelength)
    except Exception:  # tifffile raises many types for corrupt files; the caller says "not readable"
        return None


def _decode_pillow(data: bytes, name: str) -> np.ndarray:
    """RGB (or grey) pixels of the first frame through Pillow, after `_probe` checked the header; alpha dropped
    as on the OpenCV path (the colour channels as stored, not composited)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im if im.mode in ("L", "RGB") else im.convert("RGB"))
    except Image.DecompressionBombError as exc:  # pragma: no cover - _probe refused it before
        raise _over_budget(name, 2 * Image.MAX_IMAGE_PIXELS, "the image header") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise ImageDecodeError(f"{name}: not a readable image: corrupt or truncated ({_first_line(exc)}; "
                               f"{_SUPPORTED})") from exc


def _read_file(path: Path, name: str) -> bytes:
    """The bytes of a regular file (symlinks followed), at most MAX_FILE_BYTES; ImageDecodeError otherwise."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageDecodeError(f"{name}: cannot open file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageDecodeError(f"{name}: is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageDecodeError(f"{name}: not a regular file (a device, pipe or socket)")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageDecodeError(f"{name}: the file is {info.st_size / 2**20:.0f} MB, over the limit of "
                               f"{MAX_FILE_BYTES // 2**20} MB")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImageDecodeError(f"{name}: cannot open file ({exc.strerror or exc})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ImageDecodeError(f"{name}: the file is over the limit of {MAX_FILE_BYTES // 2**20} MB")
    return data


def read_bytes(source: str | Path | bytes, name: str | None = None) -> tuple[bytes, str]:
    """(bytes, name) of a file (path or bytes) within MAX_FILE_BYTES and not empty, or ImageDecodeError; the name
    (the path, else "upload") is what every decoding message quotes."""
    if isinstance(source, (str, Path)):
        name = name or str(source)
        data = _read_file(Path(source), name)
    else:
        data = bytes(source)
        name = name or "upload"
        if len(data) > MAX_FILE_BYTES:
            raise ImageDecodeError(f"{name}: the file is over the limit of {MAX_FILE_BYTES // 2**20} MB")
    if not data:
        raise ImageDecodeError(f"{name}: the file is empty")
    return data, name


def decode_raster(data: bytes, name: str) -> tuple[np.ndarray, float]:
    """RGB uint8 pixels of a JPEG/PNG/BMP/TIFF/WebP file's bytes and the share of NaN/inf values among its raw
    pixels (only float TIFFs can hold them), from one decode."""
    if _probe(data, name) in PILLOW_DECODES:
        return _as_rgb(_decode_pillow(data, name), name), 0.0
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageDecodeError(f"{name}: cannot decode the image ({_first_line(exc)})") from exc
    if array is None:
        raise ImageDecodeError(f"{name}: not a readable image: corrupt or truncated ({_SUPPORTED})")
    share = float(1.0 - np.isfinite(array).mean()) if array.dtype.kind == "f" else 0.0
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    return _as_rgb(array, name), share


def read_image(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Decode a JPEG/PNG/BMP/TIFF/WebP/DICOM file (path or bytes) to an RGB uint8 array (H, W, 3).

    Bounded (see the module docstring): any file that cannot be decoded safely raises ImageDecodeError."""
    data, name = read_bytes(source, name)
    if is_dicom_file(data, name):
        return dicom_pixels(read_dicom(data, name), name)
    return decode_raster(data, name)[0]


CROPS = ("none", "head")
CONTENT_LEVEL = 0.10   # the head: blurred pixels above 10% of the maximum (and above 10 of 255)
HEAD_MARGIN = 0.04     # margin around the head box, as a share of its longer side


def head_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the content: pixels brighter than 10% of the maximum after a light blur."""
    blurred = cv2.GaussianBlur(gray, (0, 0), max(gray.shape) / 100)
    mask = blurred > max(10.0, CONTENT_LEVEL * float(blurred.max()))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size < 2 or cols.size < 2:
        return 0, gray.shape[0], 0, gray.shape[1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_head(image: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The head's bounding box with a small margin, padded with black to a square (aspect ratio kept).

    Removes framing cues (borders, padding, zoom, off-centre placement) that differ between the collections
    a dataset was assembled from, so a model trained on it learns the anatomy rather than the framing.
    `reference` (same height and width): find the box on it instead, e.g. crop a mask like its scan.
    """
    source = image if reference is None else reference
    gray = source if source.ndim == 2 else source.mean(axis=2).astype(np.uint8)
    top, bottom, left, right = head_box(gray)
    side = max(bottom - top, right - left)
    margin = int(round(HEAD_MARGIN * side))
    side += 2 * margin
    cy, cx = (top + bottom) // 2, (left + right) // 2
    out = np.zeros((side, side) + image.shape[2:], image.dtype)
    y0, x0 = cy - side // 2, cx - side // 2
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + side, image.shape[0]), min(x0 + side, image.shape[1])
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def model_view(image: np.ndarray, crop: str = "none", reference: np.ndarray | None = None) -> np.ndarray:
    """The scan framed as the model sees it, before resizing: cropped to the head when the card's `crop` says so.
    Explanation maps are in this frame, so every picture they are drawn on (the Explain page, the report) and
    every expert mask they are scored against goes through it (a mask with its scan as `reference`)."""
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; one of {CROPS}")
    return crop_to_head(image, reference) if crop == "head" else image


def preprocess(image: np.ndarray, image_size: int, crop: str = "none") -> np.ndarray:
    """RGB uint8 (H, W, 3) -> model input float32 (S, S, 3) in 0-255. The only preprocessing.

    `crop` comes from the model card: "head" crops to the head (`crop_to_head`) before resizing.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageDecodeError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    image = model_view(_to_uint8(image), crop)
    if image.shape[:2] != (image_size, image_size):
        shrinking = image.shape[0] >= image_size and image.shape[1] >= image_size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (image_size, image_size), interpolation=interpolation)
    return image.astype(np.float32)


def load_for_model(source: str | Path | bytes, image_size: int, name: str | None = None,
                   crop: str = "none") -> np.ndarray:
    """Decode and preprocess in one call: what every consumer of a file uses."""
    return preprocess(read_image(source, name), image_size, crop)
