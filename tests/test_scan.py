"""core.io.scan: one upload is read and decoded once into a Scan that the gate, the assessment and the DICOM
panel all read; an undecodable CT is still refused by its Modality."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import ImageDecodeError
from core.io import images
from core.io.images import read_image
from core.io.scan import Scan, decode_scan
from core.model.gate import check_scan
from core.model.inference import classify


def _png(seed: int = 0) -> bytes:
    gray = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    return cv2.imencode(".png", gray)[1].tobytes()


def _dicom(name: str, broken_pixels: bool = False) -> bytes:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name))
    if broken_pixels:
        ds.PixelData = b"\x00" * 10
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_a_raster_file_decodes_to_read_only_pixels_with_its_facts():
    data = _png()
    scan = decode_scan(data, "a.png")
    assert scan.name == "a.png" and scan.sha256 == hashlib.sha256(data).hexdigest()
    assert np.array_equal(scan.rgb, read_image(data, "a.png")) and scan.rgb.dtype == np.uint8
    assert scan.modality is None and scan.header == {} and scan.non_finite_share == 0.0 and scan.problem is None
    with pytest.raises(ValueError):
        scan.pixels[0, 0, 0] = 1  # shared by every consumer: nobody changes it in place
    with pytest.raises(AttributeError):
        scan.name = "b.png"  # type: ignore[misc]


def test_nan_share_comes_from_the_same_decode():
    values = np.ones((32, 32), np.float32)
    values[:8] = np.nan
    scan = decode_scan(cv2.imencode(".tiff", values)[1].tobytes(), "nan.tif")
    assert scan.non_finite_share == pytest.approx(0.25)
    assert check_scan(scan).layer == "image:non_finite"


def test_a_dicom_carries_modality_and_technical_header():
    scan = decode_scan(_dicom("MR_small.dcm"), "mr.dcm")
    assert scan.modality == "MR" and scan.rgb.shape == (64, 64, 3)
    assert scan.header["Manufacturer"] == "TOSHIBA_MEC" and scan.header["Plane"] == "axial"
    assert check_scan(scan) is None


def test_undecodable_pixels_are_a_problem_not_an_error_until_asked():
    ct = decode_scan(_dicom("CT_small.dcm", broken_pixels=True), "ct.dcm")
    assert ct.pixels is None and ct.modality == "CT" and "cannot read DICOM pixel data" in ct.problem
    assert ct.header["Modality"] == "CT"
    assert check_scan(ct).layer == "metadata"
    garbage = decode_scan(b"garbage" * 30, "bad.png")
    assert garbage.pixels is None and check_scan(garbage) is None
    with pytest.raises(ImageDecodeError, match="bad.png: not a readable image"):
        garbage.rgb  # noqa: B018 - the property raises the decoder's reason


def test_unreadable_files_raise_at_once(tmp_path):
    with pytest.raises(ImageDecodeError, match="cannot open file"):
        decode_scan(tmp_path / "missing.png")
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_scan(b"", "empty.png")


def test_classify_reads_a_file_once(tiny_model, tmp_path, monkeypatch):
    path = tmp_path / "scan.png"
    path.write_bytes(_png(1))
    reads = []
    real = images._read_file
    monkeypatch.setattr(images, "_read_file", lambda p, name: reads.append(p) or real(p, name))
    model, card = tiny_model
    from_path = classify(model, card, path)
    assert reads == [path]
    from_scan = classify(model, card, decode_scan(path.read_bytes(), str(path)))
    assert from_scan.file == from_path.file and from_scan.probabilities == from_path.probabilities


def test_classify_refuses_an_undecodable_ct_and_raises_for_an_undecodable_mr(tiny_model):
    model, card = tiny_model
    refused = classify(model, card, _dicom("CT_small.dcm", broken_pixels=True), "ct.dcm")
    assert refused.refused and refused.refusal_layer == "metadata" and not refused.decoded
    with pytest.raises(ImageDecodeError):
        classify(model, card, decode_scan(_dicom("MR_small.dcm", broken_pixels=True), "mr.dcm"))
    assert isinstance(decode_scan(_png(), "x.png"), Scan)


def test_the_app_decodes_an_upload_once_for_its_answer_picture_and_header(tiny_model_dir, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from ui import services, state

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("BRAINSCAN_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("BRAINSCAN_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("BRAINSCAN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("BRAINSCAN_DB_URL", raising=False)
    monkeypatch.chdir(repo)
    decoded = []
    real = services.decode_scan
    monkeypatch.setattr(services, "decode_scan", lambda data, name: decoded.append(name) or real(data, name))
    st.cache_data.clear()
    at = AppTest.from_file(str(repo / "app.py"), default_timeout=300)
    at.run()
    at.file_uploader(key=state.uploads_key(0)).set_value([("mr.dcm", _dicom("MR_small.dcm"), "application/dicom")]).run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart") and at.get("image"), "an answer and the picture"
    assert "DICOM technical header" in [e.label for e in at.expander]
    assert len(decoded) == 1, decoded
