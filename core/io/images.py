"""Images in: decode any supported file to RGB uint8, and the one preprocessing function.

`preprocess` is the single path from a decoded scan to the model's input tensor; training,
prediction, explainers and metrics all call it. Keras EfficientNet models rescale and normalise
inside the network, so the tensor stays in 0-255 (scaling to [0,1] here would be a bug).
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from core.errors import ImageDecodeError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
DICOM_EXTENSIONS = {".dcm", ".dicom"}


def _is_dicom(data: bytes, name: str) -> bool:
    return data[128:132] == b"DICM" or Path(name).suffix.lower() in DICOM_EXTENSIONS


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale any numeric image to uint8 by its own range (16-bit PNG/TIFF, float data)."""
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.all():  # NaN/inf pixels become black instead of poisoning the whole range
        array = np.where(finite, array, np.min(array[finite]) if finite.any() else 0.0)
    lo, hi = float(np.min(array)), float(np.max(array))
    if hi <= lo:
        return np.zeros(array.shape, np.uint8)
    return np.clip((array - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _as_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 8:
        raise ImageDecodeError(f"{name}: unsupported image shape {array.shape}")
    return np.ascontiguousarray(_to_uint8(array))


def dicom_modality(source: str | Path | bytes) -> str | None:
    """The DICOM header's Modality (e.g. 'MR', 'CT'), read without decoding pixels; None when the file is not
    DICOM or has no Modality. Lets the input gate refuse a CT or X-ray before any pixel is decoded."""
    try:
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    except OSError:
        return None
    name = str(source) if isinstance(source, (str, Path)) else ""
    if not data or not _is_dicom(data, name):
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True, specific_tags=["Modality"])
    except Exception:  # a corrupt header: the decoder reports it with its own message
        return None
    value = str(getattr(ds, "Modality", "") or "").strip().upper()
    return value or None


def non_finite_fraction(source: str | Path | bytes) -> float:
    """Share of NaN/inf values in a float TIFF's raw pixels (0 for integer images and unreadable files).

    The decoder maps any image to uint8 by its own range, which silently turns NaN into a picture; the input
    gate asks this first.
    """
    try:
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    except OSError:
        return 0.0
    if not data or data[:4] not in (b"II*\x00", b"MM\x00*"):
        return 0.0  # of the supported formats only TIFF stores float pixels (JPEG/PNG/BMP are integer; DICOM too)
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype.kind != "f":
        return 0.0
    return float(1.0 - np.isfinite(array).mean())


def _decode_dicom(data: bytes, name: str) -> np.ndarray:
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError as exc:  # pragma: no cover - pydicom is a listed requirement
        raise ImageDecodeError(f"{name}: DICOM support needs pydicom ({exc})") from exc
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for corrupt or compressed files
        raise ImageDecodeError(f"{name}: cannot read DICOM pixel data ({exc})") from exc
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("MONOCHROME"):
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            pixels = pixels[len(pixels) // 2]
        values = apply_modality_lut(pixels, ds).astype(np.float64)
        if "WindowCenter" in ds and "WindowWidth" in ds:
            values = apply_voi_lut(values, ds).astype(np.float64)
        image = _to_uint8(values)
        if photometric == "MONOCHROME1":
            image = 255 - image
        return _as_rgb(image, name)
    if pixels.ndim == 4:
        pixels = pixels[len(pixels) // 2]
    return _as_rgb(pixels, name)


def read_image(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Decode a JPEG/PNG/BMP/TIFF/DICOM file (path or bytes) to an RGB uint8 array (H, W, 3)."""
    if isinstance(source, (str, Path)):
        name = name or str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"{name}: cannot open file ({exc.strerror or exc})") from exc
    else:
        data = bytes(source)
        name = name or "upload"
    if not data:
        raise ImageDecodeError(f"{name}: the file is empty")
    if _is_dicom(data, name):
        return _decode_dicom(data, name)
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageDecodeError(f"{name}: not a readable image (supported: JPEG, PNG, BMP, TIFF, DICOM)")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    return _as_rgb(array, name)


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


def crop_to_head(image: np.ndarray) -> np.ndarray:
    """The head's bounding box with a small margin, padded with black to a square (aspect ratio kept).

    Removes framing cues (borders, padding, zoom, off-centre placement) that differ between the collections
    a dataset was assembled from, so a model trained on it learns the anatomy rather than the framing.
    """
    gray = image if image.ndim == 2 else image.mean(axis=2).astype(np.uint8)
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


def preprocess(image: np.ndarray, image_size: int, crop: str = "none") -> np.ndarray:
    """RGB uint8 (H, W, 3) -> model input float32 (S, S, 3) in 0-255. The only preprocessing.

    `crop` comes from the model card: "head" crops to the head (`crop_to_head`) before resizing.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageDecodeError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; one of {CROPS}")
    image = _to_uint8(image)
    if crop == "head":
        image = crop_to_head(image)
    if image.shape[:2] != (image_size, image_size):
        shrinking = image.shape[0] >= image_size and image.shape[1] >= image_size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (image_size, image_size), interpolation=interpolation)
    return image.astype(np.float32)


def load_for_model(source: str | Path | bytes, image_size: int, name: str | None = None,
                   crop: str = "none") -> np.ndarray:
    """Decode and preprocess in one call: what every consumer of a file uses."""
    return preprocess(read_image(source, name), image_size, crop)
