"""DICOM series: ordering, refusing mixed uploads, zip limits, the technical header, batched classification."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from core.errors import CaseError
from core.io.images import load_for_model, read_image
from core.io.series import expand_archives, header_of, load_series
from core.model.inference import classify
from core.model.series_assessment import classify_series, no_tumour_class
from tests.dicom_builder import mr_multiframe, mr_slice


def _grays(n: int, size: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size)).astype(np.uint8) for _ in range(n)]


def test_slices_are_ordered_by_position_not_upload_order():
    grays = _grays(3)
    files = {"c.dcm": mr_slice(grays[2], 10.0, 1), "a.dcm": mr_slice(grays[0], -10.0, 3),
             "b.dcm": mr_slice(grays[1], 0.0, 2)}
    series = load_series(files)
    assert series.ordered_by == "position along the slice normal"
    assert [s.position for s in series.slices] == [-10.0, 0.0, 10.0]
    assert [s.instance for s in series.slices] == [3, 2, 1]
    for s, name in zip(series.slices, ["a.dcm", "b.dcm", "c.dcm"]):
        assert np.array_equal(s.image, read_image(files[name], name))  # the single-file decoder, unchanged
        assert np.array_equal(read_image(s.png, "slice.png"), s.image)  # the PNG the app classifies is lossless
    assert series.slices[0].label == "Slice 1 · -10.0 mm"


def test_instance_number_orders_when_positions_are_missing():
    grays = _grays(3)
    files = {}
    for name, gray, instance in (("x", grays[0], 2), ("y", grays[1], 3), ("z", grays[2], 1)):
        ds = pydicom.dcmread(io.BytesIO(mr_slice(gray, 0.0, instance)))
        del ds.ImagePositionPatient
        out = io.BytesIO()
        ds.save_as(out)
        files[name] = out.getvalue()
    series = load_series(files)
    assert series.ordered_by == "instance number" and [s.instance for s in series.slices] == [1, 2, 3]


def test_mixed_series_patients_and_other_files_are_refused():
    g = _grays(2)
    with pytest.raises(CaseError, match="2 different series"):
        load_series({"a": mr_slice(g[0], 0, 1), "b": mr_slice(g[1], 5, 2, series_uid="1.2.3.4")})
    with pytest.raises(CaseError, match="2 different patients"):
        load_series({"a": mr_slice(g[0], 0, 1), "b": mr_slice(g[1], 5, 2, patient_id="PID-2")})
    with pytest.raises(CaseError, match="uploaded alone"):
        load_series({"a": mr_slice(g[0], 0, 1), "b.png": b"\x89PNG...."})


def test_multiframe_file_is_split_and_ordered_by_frame_positions():
    grays = _grays(3)
    series = load_series({"multi.dcm": mr_multiframe(grays, [20.0, 0.0, 10.0])})
    assert [s.position for s in series.slices] == [0.0, 10.0, 20.0]
    assert np.array_equal(series.slices[0].image[:, :, 0], read_image(mr_slice(grays[1], 0, 1))[:, :, 0])
    assert series.header["Frames"] == "3"


def test_real_multiframe_file_from_pydicom():
    path = Path(pydicom.data.get_testdata_file("rtdose.dcm"))
    series = load_series({"rtdose.dcm": path.read_bytes()})
    assert len(series.slices) == 15 and series.slices[0].image.dtype == np.uint8
    assert series.header["Modality"] == "RTDOSE"


def test_header_panel_is_technical_only():
    data = mr_slice(_grays(1)[0], 0, 1)
    header = header_of(data)
    assert header == {"Modality": "MR", "Series description": "T1 AX POST GD", "Slice thickness (mm)": "5.0",
                      "Pixel spacing (mm)": "0.9 × 0.9", "Manufacturer": "ACME Imaging", "Plane": "axial"}
    assert not any(v in str(header) for v in ("Doe", "PID-1", "1960"))
    assert header_of(b"\x89PNG not dicom") == {}


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_zip_of_a_series_and_zip_bomb_limits():
    g = _grays(2)
    archive = _zip({"s/1.dcm": mr_slice(g[0], 0, 1), "s/2.dcm": mr_slice(g[1], 5, 2), "__MACOSX/._1.dcm": b"x"})
    files = expand_archives({"series.zip": archive, "other.dcm": b"keep"})
    assert sorted(files) == ["other.dcm", "series.zip/s/1.dcm", "series.zip/s/2.dcm"]
    assert len(load_series({k: v for k, v in files.items() if k.startswith("series")}).slices) == 2
    bomb = _zip({"zeros.bin": bytes(5_000_000)})
    assert len(bomb) < 20_000
    with pytest.raises(CaseError, match="more than 1 MiB"):
        expand_archives({"bomb.zip": bomb}, max_bytes=1 << 20)
    with pytest.raises(CaseError, match="holds 3 files; at most 2"):
        expand_archives({"many.zip": _zip({f"{i}": b"x" for i in range(3)})}, max_members=2)
    with pytest.raises(CaseError, match="cannot open the zip"):
        expand_archives({"broken.zip": b"PK\x03\x04garbage"})


@pytest.mark.data
def test_series_of_real_scans_is_classified_in_one_batch_like_single_files(real_data, tiny_model):
    model, card = tiny_model
    paths = sorted((real_data / "Testing" / "glioma").glob("*.jpg"))[:2] + sorted(
        (real_data / "Testing" / "notumor").glob("*.jpg"))[:1]
    grays = [read_image(p)[:, :, 0] for p in paths]
    series = load_series({f"{i}.dcm": mr_slice(g, float(i * 5), i + 1) for i, g in enumerate(grays)})
    result = classify_series(model, card, [s.image for s in series.slices])
    assert result.probabilities.shape == (3, len(card.class_names))
    for i, s in enumerate(series.slices):
        single = classify(model, card, s.png, "slice.png")
        assert result.probabilities[i] == pytest.approx([single.probabilities[c] for c in card.class_names], abs=1e-5)
        assert np.allclose(load_for_model(s.png, card.image_size, "x.png"), load_for_model(
            mr_slice(grays[i], 0, 1), card.image_size, "x.dcm"))
    normal = card.class_names.index(no_tumour_class(card.class_names))
    assert result.suspicion == pytest.approx(1 - result.probabilities[:, normal])
    assert result.ranking[0] == int(np.argmax(result.suspicion))
    assert f"at slice {result.top + 1} of 3" in result.summary() and "1 − P(No tumour)" in result.summary()


def test_series_slices_go_through_the_input_gate(tiny_model, rng):
    """A CT series is refused by its Modality; a blank slice in an MR series is refused and counts 0."""
    model, card = tiny_model
    slices = [np.repeat(rng.integers(0, 256, (48, 48, 1), dtype=np.uint8), 3, axis=2) for _ in range(3)]
    ct = classify_series(model, card, slices, modality="CT")
    assert ct.refused == [0, 1, 2] and not ct.suspicion.any()
    assert ct.summary().startswith("Not classified: the input gate refused all 3 slices")
    blank = [slices[0], np.zeros_like(slices[1]), slices[2]]
    mr = classify_series(model, card, blank, modality="MR")
    assert mr.refused == [1] and mr.suspicion[1] == 0 and mr.top != 1
    assert "refused 1 of 3 slices (slice 2)" in mr.summary()
    single = classify(model, card, cv2.imencode(".png", slices[0])[1].tobytes(), "one.png")
    assert mr.predictions[0].probabilities == pytest.approx(single.probabilities, abs=1e-5)
