"""Decoding and the one preprocessing path."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from core.errors import ImageDecodeError
from core.io.images import load_for_model, preprocess, read_image


def _encode(array: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, array)
    assert ok
    return buf.tobytes()


def _dicom(pixels: np.ndarray, photometric: str = "MONOCHROME2", slope: float = 1.0, intercept: float = 0.0,
           window: tuple[float, float] | None = None) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


RAMP = np.tile(np.arange(0, 64, dtype=np.uint16) * 50, (64, 1))


GREY = np.tile(np.arange(30, dtype=np.uint8) * 5 + 20, (20, 1))
BGRA = np.dstack([np.full((16, 16), v, np.uint8) for v in (10, 20, 200, 255)])
BGRA[-1, -1, :3] = 0  # one dark pixel: an image with some variation
RAMP16 = (np.arange(144, dtype=np.uint16) * 279).reshape(12, 12)


@pytest.mark.parametrize("data, expected", [
    (_encode(GREY, ".png"), (20, 30, GREY)),
    (_encode(BGRA, ".png"), (16, 16, None)),
    (_encode(RAMP16, ".png"), (12, 12, np.floor(RAMP16 / RAMP16.max() * 255 + 0.5).astype(np.uint8))),
    (b"", ImageDecodeError),
    (b"not an image at all" * 10, ImageDecodeError),
    (_encode(np.zeros((4, 4), np.uint8), ".png"), ImageDecodeError),
    (_encode(np.full((20, 30), 77, np.uint8), ".png"), (20, 30, np.full((20, 30), 77, np.uint8))),
    (_encode(np.full((12, 12), 40000, np.uint16), ".png"), (12, 12, np.zeros((12, 12), np.uint8))),
])
def test_read_image_formats_and_errors(data, expected):
    if isinstance(expected, type):
        with pytest.raises(expected, match="upload"):
            read_image(data, "upload")
        return
    image = read_image(data, "upload")
    assert image.dtype == np.uint8 and image.shape == (expected[0], expected[1], 3)
    if expected[2] is not None:
        assert np.array_equal(image, np.repeat(expected[2][:, :, None], 3, axis=2))


def test_rgba_png_is_converted_from_bgr_order():
    assert tuple(read_image(_encode(BGRA, ".png"))[0, 0]) == (200, 20, 10)


def test_dicom_monochrome2_rescale_and_window():
    image = read_image(_dicom(RAMP, slope=2.0, intercept=-100.0, window=(1000.0, 1000.0)), "scan.dcm")
    assert image.shape == (64, 64, 3)
    values = image[0, :, 0].astype(int)
    assert values[0] == 0 and values[-1] == 255
    assert (np.diff(values) >= 0).all()
    stored = RAMP[0] * 2.0 - 100.0
    assert values[np.argmax(stored >= 1500)] == 255 and values[stored < 500].max() == 0


def test_dicom_monochrome1_is_inverted():
    normal = read_image(_dicom(RAMP), "a.dcm")
    inverted = read_image(_dicom(RAMP, "MONOCHROME1"), "b.dcm")
    assert np.array_equal(inverted, 255 - normal)


def test_corrupt_dicom_is_a_clear_error():
    with pytest.raises(ImageDecodeError, match="DICOM"):
        read_image(b"\0" * 128 + b"DICM" + b"garbage" * 20, "bad.dcm")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ImageDecodeError, match="cannot open"):
        read_image(tmp_path / "nope.jpg")


def test_preprocess_keeps_0_255_range_and_size(rng):
    image = rng.integers(0, 256, (224, 200, 3), dtype=np.uint8)
    out = preprocess(image, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.float32
    assert out.max() > 200, "preprocess must not scale to [0,1]: EfficientNet rescales internally"
    assert np.array_equal(out, np.round(out)), "whole numbers: the uint8 training cache is exact"


def test_preprocess_does_not_mutate_input(rng):
    image = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    copy = image.copy()
    preprocess(image, 32)
    assert np.array_equal(image, copy)


def test_load_for_model_equals_read_then_preprocess(tiny_dataset):
    path = next((tiny_dataset / "Testing" / "glioma").iterdir())
    assert np.array_equal(load_for_model(path, 32), preprocess(read_image(path), 32))


def _pillow_bytes(array: np.ndarray, fmt: str, **options) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("array", [
    np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8),  # colour
    np.tile(np.arange(40, dtype=np.uint8) * 6, (24, 1)),  # grey (WebP stores it as RGB)
], ids=["rgb", "grey"])
def test_webp_reads_like_the_same_lossless_png(array):
    webp, png = _pillow_bytes(array, "WEBP", lossless=True), _pillow_bytes(array, "PNG")
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    image = read_image(webp, "scan.webp")
    assert image.dtype == np.uint8 and image.shape == (24, 40, 3)
    assert np.array_equal(image, read_image(png, "scan.png"))
    assert np.array_equal(load_for_model(webp, 16, "scan.webp"), load_for_model(png, 16, "scan.png"))


def test_webp_with_alpha_drops_the_alpha_like_png():
    rgba = np.dstack([np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8),
                      np.full((16, 16), 255, np.uint8)])
    assert np.array_equal(read_image(_pillow_bytes(rgba, "WEBP", lossless=True, exact=True)),
                          read_image(_pillow_bytes(rgba, "PNG")))


def test_webp_keeps_the_header_pixel_budget_and_corruption_errors(monkeypatch):
    import core.io.images as images

    webp = _pillow_bytes(np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8), "WEBP",
                         lossless=True)
    monkeypatch.setattr(images, "MAX_PIXELS", 30 * 40 - 1)
    with pytest.raises(ImageDecodeError, match=r"WEBP header \(40 x 30\).*over the limit"):
        read_image(webp, "big.webp")
    monkeypatch.undo()
    with pytest.raises(ImageDecodeError, match="big.webp"):
        read_image(webp[: len(webp) // 2], "big.webp")


def test_webp_files_are_image_files():
    from core.io.images import IMAGE_EXTENSIONS

    assert ".webp" in IMAGE_EXTENSIONS
