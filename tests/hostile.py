"""A corpus of hostile files for the decoder, the CLI, the app's upload path and the data loader.

`write_corpus(folder)` writes them (tiny: the bombs are headers that declare huge images, or small
compressed streams that would inflate to hundreds of megapixels) and returns, for each file name, the
phrase its one-line decoding error must contain, GATE for blank and NaN/inf images (decoded, then refused by
the input gate), or None for the files that are valid and must be classified. Used by
tests/test_hostile_files.py.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

BOMB = "over the limit"
UNREADABLE = "not a readable image"
GATE = "<input gate>"  # decodes (NaN/inf as black), then the input gate refuses it: an answer, not an error


def _encode(array: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, array)
    assert ok, ext
    return buf.tobytes()


def _scan(size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int, complete: bool = True, ramp: bool = False) -> bytes:
    """A grey PNG of width x height zeros (or of a repeated horizontal ramp): a real, valid file of about
    1 KB per megapixel, or only its header."""
    stream = b""
    if complete:
        compressor = zlib.compressobj(9)
        row = b"\0" + (bytes((np.arange(width) % 256).astype(np.uint8)) if ramp else b"\0" * width)
        rows = b"".join(compressor.compress(row * 64) for _ in range(height // 64))
        stream = rows + compressor.compress(row * (height % 64)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", stream)
            + _png_chunk(b"IEND", b""))


def jpeg_bomb(width: int, height: int) -> bytes:
    """A small JPEG whose SOF header is patched to declare width x height (the 4.7 KB 30000 x 30000 kind)."""
    data = bytearray(_encode(_scan(), ".jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_bomb(width: int, height: int) -> bytes:
    """A small 8-bit BMP whose header declares width x height."""
    data = bytearray(_encode(_scan(), ".bmp"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def tiff_bomb(width: int, height: int) -> bytes:
    """A one-strip uncompressed grey TIFF whose header declares width x height (the strip holds 64 bytes)."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, height), (279, 4, width * height)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\x80" * 64


def float_tiff(values: np.ndarray) -> bytes:
    return _encode(values.astype(np.float32), ".tiff")


def dicom(rows: int = 64, columns: int = 64, frames: int | None = None, pixels: bytes | None = None,
          with_pixels: bool = True, value: int | None = None) -> bytes:
    """A 16-bit MONOCHROME2 DICOM; `frames`/`pixels` let the header disagree with the data."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4" if with_pixels else "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = "Hostile^Test"
    if with_pixels:
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if frames is not None:
            ds.NumberOfFrames = frames
        if pixels is None:
            grid = np.full((rows, columns), value, np.uint16) if value is not None else \
                np.random.default_rng(0).integers(0, 4000, (rows, columns), dtype=np.uint16)
            pixels = grid.tobytes()
        ds.PixelData = pixels
    else:
        ds.Modality = "SR"
        ds.ContentSequence = []
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _contents() -> dict[str, tuple[bytes, str | None]]:
    jpeg, png, bmp = _encode(_scan(), ".jpg"), _encode(_scan(), ".png"), _encode(_scan(), ".bmp")
    tiff = _encode(_scan(), ".tiff")
    nan = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    nan[5, 5] = np.nan
    inf = np.random.default_rng(2).random((32, 32, 3)).astype(np.float32)
    inf[0, 0, 1] = np.inf
    gif = (b"GIF89a\x10\x00\x10\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x10\x00\x10\x00"
           b"\x00\x02\x02D\x01\x00;")
    return {
        # decompression bombs, one per format (header-declared or genuinely compressed)
        "bomb_png_40000x40000.png": (png_bomb(40000, 40000, complete=False), BOMB),
        "bomb_png_10000x10000_valid.png": (png_bomb(10000, 10000), BOMB),
        "bomb_jpeg_30000x30000.jpg": (jpeg_bomb(30000, 30000), BOMB),
        "bomb_jpeg_65500x65500.jpg": (jpeg_bomb(65500, 65500), BOMB),
        "bomb_tiff_30000x30000.tif": (tiff_bomb(30000, 30000), BOMB),
        "bomb_bmp_30000x30000.bmp": (bmp_bomb(30000, 30000), BOMB),
        "bomb_dicom_100000_frames.dcm": (dicom(512, 512, frames=100000), BOMB),
        "bomb_dicom_65535x65535.dcm": (dicom(65535, 65535, pixels=b"\0\0" * 64), BOMB),
        "large_valid_7000x7000.png": (png_bomb(7000, 7000, ramp=True), None),  # 49 MP: under the limit, decoded
        # values with no meaning
        "nan_float.tif": (float_tiff(nan), GATE),
        "inf_float_rgb.tif": (float_tiff(inf), GATE),
        "constant_grey.png": (_encode(np.full((64, 64), 128, np.uint8), ".png"), GATE),
        "constant_black.jpg": (_encode(np.zeros((64, 64), np.uint8), ".jpg"), GATE),
        "constant_16bit.png": (_encode(np.full((64, 64), 40000, np.uint16), ".png"), GATE),
        "constant_dicom.dcm": (dicom(value=700), GATE),
        # truncated and corrupt
        "truncated.png": (png[:len(png) // 2], UNREADABLE),
        "truncated.jpg": (jpeg[:len(jpeg) // 2], UNREADABLE),
        "truncated.bmp": (bmp[:len(bmp) // 2], UNREADABLE),
        "truncated.tif": (tiff[:len(tiff) // 2], UNREADABLE),
        "truncated_pixels.dcm": (dicom()[:-1000], "DICOM"),
        "random_bytes.jpg": (np.random.default_rng(3).bytes(2000), UNREADABLE),
        "zero_bytes.png": (b"", "empty"),
        "too_small_4x4.png": (_encode(_scan(4), ".png"), "unsupported image shape"),
        # wrong formats and extensions
        "text_named.png": (b"name,diagnosis\nJane Doe,glioma\n" * 20, UNREADABLE),
        "gif_named.png": (gif, "unsupported image format GIF"),
        "jpeg_named.dcm": (jpeg, None),  # likewise
        "png_named.jpg": (png, None),  # content decides the format: a real scan, classified
        # DICOM that is not an image
        "non_image_report.dcm": (dicom(with_pixels=False), "no pixel data"),
        "dicom_zero_rows.dcm": (dicom(0, 64, pixels=b""), "empty image"),
        # the valid controls
        "valid.dcm": (dicom(), None),
        "valid.tif": (tiff, None),
    }


def write_corpus(folder: str | Path) -> dict[str, str | None]:
    """Write every hostile file (plus links, a folder and a sparse oversized file) into `folder`.

    Returns {file name: phrase expected in its error message, GATE if it decodes but the input gate refuses it,
    or None if it must be classified}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    for name, (data, reason) in _contents().items():
        (folder / name).write_bytes(data)
        expected[name] = reason
    (folder / "folder_named.png").mkdir(exist_ok=True)
    expected["folder_named.png"] = "is a folder"
    links = {"link_dangling.png": (folder / "missing.png", "cannot open"),
             "link_loop.png": (folder / "link_loop.png", "cannot open"),
             "link_to_device.png": (Path(os.devnull), "not a regular file"),
             "link_to_valid.jpg": (folder / "png_named.jpg", None)}
    for name, (target, reason) in links.items():
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(target)
        expected[name] = reason
    with open(folder / "sparse_300mb.png", "wb") as handle:  # sparse: 300 MB declared, nothing on disk
        handle.truncate(300 * 2**20)
    expected["sparse_300mb.png"] = "over the limit"
    return expected


def uploadable(folder: str | Path, expected: dict[str, str | None]) -> dict[str, bytes]:
    """The corpus files a browser can upload (regular files under the app's 50 MB limit) as name -> bytes."""
    folder = Path(folder)
    return {name: (folder / name).read_bytes() for name in expected
            if (folder / name).is_file() and not (folder / name).is_symlink()
            and (folder / name).stat().st_size < 50 * 2**20}
