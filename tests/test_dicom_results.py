"""The DICOM result objects for the PACS: SR, Secondary Captures of the overlays, Encapsulated PDF (issue 24).

Sources: an MR series built with pydicom from three real Kaggle scans, with realistic headers. Assessments are
constructed (one confident slice, one where two classes stay plausible, one the learned gate refused), so no model
runs here; the objects are read back with pydicom and highdicom and checked with dicom3tools' `dciodvfy`.
"""
from __future__ import annotations

import copy
import io
import re
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from core.errors import CaseError
from core.model.assessment import Assessment
from core.model.series_assessment import SeriesResult
from core.report.dicom_results import (
    RESEARCH_ONLY,
    OverlayCapture,
    ResultObjects,
    build_results,
    overlay_captures,
    read_sr,
    sr_text,
)
from core.report.model_info import ModelInfo
from core.report.pdf import ReportOverlay, ReportScan
from tests.dicom_builder import mr_slice

NAMES = ("glioma", "meningioma", "notumor", "pituitary")
INFO = ModelInfo("BrainScan EfficientNetB0", "3f" * 32, "EfficientNetB0", 224, NAMES, {})
SOFTWARE = "9.8.7"
SCANS = ("glioma/Te-gl_0010.jpg", "meningioma/Te-me_0010.jpg", "notumor/Te-no_0010.jpg")
HEADER = {"PatientSex": "F", "StudyDate": "20240305", "StudyTime": "101500", "StudyID": "S-42",
          "AccessionNumber": "ACC-0042", "ReferringPhysicianName": "Roe^Richard", "StudyDescription": "MRI BRAIN",
          "SeriesNumber": 3, "BodyPartExamined": "BRAIN", "SpecificCharacterSet": "ISO_IR 100"}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _answered(file: str, proba: tuple[float, ...], members: tuple[str, ...]) -> Assessment:
    return Assessment(file, NAMES, proba, proba, True, members, ood_score=0.1, model=INFO.name)


def _refused(file: str, reason: str, layer: str) -> Assessment:
    return Assessment(file, NAMES, refusal=reason, refusal_layer=layer, model=INFO.name)


def _series(assessments: list[Assessment]) -> SeriesResult:
    proba = np.array([[np.nan] * 4 if a.refused else list(a.calibrated) for a in assessments])
    suspicion = np.where([a.refused for a in assessments], 0.0, 1 - np.nan_to_num(proba[:, 2]))
    return SeriesResult(list(NAMES), proba, suspicion, "the highest tumour probability", assessments)


@pytest.fixture(scope="module")
def sources() -> list[Dataset]:
    """Three single-frame MR slices of one series (real Kaggle pixels, realistic patient/study/series headers)."""
    import cv2

    from tests.conftest import REAL_DATA

    if not (REAL_DATA / "Testing").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA} (set BRAINSCAN_DATA)")
    out = []
    for i, name in enumerate(SCANS):
        gray = cv2.imread(str(REAL_DATA / "Testing" / name), cv2.IMREAD_GRAYSCALE)
        ds = pydicom.dcmread(io.BytesIO(mr_slice(gray, 5.0 * i, i + 1)))
        for keyword, value in HEADER.items():
            setattr(ds, keyword, value)
        out.append(ds)
    return out


@pytest.fixture(scope="module")
def result() -> SeriesResult:
    return _series([_answered("slice 1", (0.91, 0.04, 0.03, 0.02), ("glioma",)),
                    _answered("slice 2", (0.46, 0.41, 0.08, 0.05), ("glioma", "meningioma")),
                    _refused("slice 3", "looks unlike the brain MRI scans the model knows (score 7.2 > 3.1)",
                             "learned")])


@pytest.fixture(scope="module")
def objects(sources: list[Dataset], result: SeriesResult) -> ResultObjects:
    picture = np.random.default_rng(0).integers(0, 256, (280, 256, 3), dtype=np.uint8)
    return build_results(sources, result, INFO, [OverlayCapture("Score-CAM of Glioma, slice 1", picture, 0)], PDF,
                         software=SOFTWARE)


def _written(ds: Dataset, folder: Path, name: str) -> Path:
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_sr_holds_the_model_statement_verdicts_probabilities_sets_and_references(objects, sources, result):
    reading = read_sr(objects.sr)
    assert (reading.model_name, reading.model_version) == (INFO.name, INFO.version)
    assert reading.statement == RESEARCH_ONLY == "Research use only - not a medical device"
    assert reading.summary == result.summary()
    assert reading.series_probability == pytest.approx(0.97)
    assert len(reading.slices) == 3
    for slice_, source, assessment in zip(reading.slices, sources, result.predictions):
        assert (slice_.sop_class_uid, slice_.sop_instance_uid) == (source.SOPClassUID, source.SOPInstanceUID)
        assert (slice_.state, slice_.headline) == (assessment.state.value, assessment.headline)
        assert slice_.answer == assessment.answer and slice_.top_class == assessment.predicted
        assert slice_.probabilities == pytest.approx(assessment.probabilities, abs=1e-6)
    first, second, refused = reading.slices
    assert (first.answer, first.prediction_set) == ("glioma", ("glioma",))
    assert (second.state, second.answer, second.prediction_set) == ("several", None, ("glioma", "meningioma"))
    assert refused.refusal == result.predictions[2].refusal and refused.state == "refused"
    assert refused.probabilities == {} and refused.prediction_set is None and refused.top_class is None


def test_every_object_is_in_the_source_study_in_its_own_new_series_with_the_app_as_equipment(objects, sources):
    source_series = sources[0].SeriesInstanceUID
    series = [ds.SeriesInstanceUID for ds in (objects.sr, objects.captures[0], objects.pdf)]
    assert len(set(series)) == 3 and source_series not in series
    assert [ds.Modality for ds in objects.datasets] == ["SR", "OT", "DOC"]
    assert [ds.SOPClassUID.name for ds in objects.datasets] == [
        "Comprehensive SR Storage", "Secondary Capture Image Storage", "Encapsulated PDF Storage"]
    for ds in objects.datasets:
        assert ds.StudyInstanceUID == sources[0].StudyInstanceUID
        assert (ds.Manufacturer, ds.SoftwareVersions) == ("BrainScan XAI", SOFTWARE)
        assert ds.SOPInstanceUID not in {s.SOPInstanceUID for s in sources}
        assert "research use only" in ds.SeriesDescription
    lines = objects.describe()
    assert len(lines) == 3 and "Score-CAM of Glioma, slice 1 (256x280 pixels)" in lines[1]
    assert f"the case report ({len(PDF)} bytes)" in lines[2] and "Doe" not in " ".join(lines)


def test_no_patient_data_beyond_what_the_source_carries(objects, sources):
    """Every patient/study attribute of a result equals the source's (nothing added, nothing altered)."""
    source = sources[0]
    identifying = re.compile(r"^(Patient(?!Orientation|Position)|Other|Ethnic|Referring|Accession|Issuer"
                             r"|Study(Date|Time|ID|Description))")
    for ds in objects.datasets:
        for element in ds:
            if identifying.match(element.keyword):
                assert element.keyword in source and str(element.value) == str(source[element.tag].value), \
                    f"{element.keyword} in {ds.Modality}"


def test_capture_pixels_references_and_pdf_bytes_survive_a_file_round_trip(objects, sources, tmp_path):
    capture = pydicom.dcmread(_written(objects.captures[0], tmp_path, "sc.dcm"))
    expected = np.random.default_rng(0).integers(0, 256, (280, 256, 3), dtype=np.uint8)
    assert np.array_equal(capture.pixel_array, expected)
    assert capture.SourceImageSequence[0].ReferencedSOPInstanceUID == sources[0].SOPInstanceUID
    assert (capture.PatientOrientation, capture.BurnedInAnnotation) == (["L", "P"], "YES")
    assert capture.DerivationDescription == "Score-CAM of Glioma, slice 1"
    document = pydicom.dcmread(_written(objects.pdf, tmp_path, "pdf.dcm"))
    assert document.EncapsulatedDocument[:document.EncapsulatedDocumentLength] == PDF
    assert document.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert [r.ReferencedSOPInstanceUID for r in document.SourceInstanceSequence] == [
        s.SOPInstanceUID for s in sources]
    sr = pydicom.dcmread(_written(objects.sr, tmp_path, "sr.dcm"))
    assert read_sr(sr) == read_sr(objects.sr)
    parsed = hd.sr.ComprehensiveSR.from_dataset(sr)  # highdicom reads it back as the IOD it claims
    assert (parsed.CompletionFlag, parsed.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert sorted(r.ReferencedSOPInstanceUID for r in evidence.ReferencedSOPSequence) == sorted(
        s.SOPInstanceUID for s in sources)


def _validator_errors(path: Path) -> list[str]:
    checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]


def test_dciodvfy_finds_no_errors(objects, tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed: apt-get install dicom3tools")
    for number, ds in enumerate(objects.datasets):
        assert _validator_errors(_written(ds, tmp_path, f"{number}.dcm")) == [], ds.SOPClassUID.name


def test_a_series_refused_slice_by_slice_carries_the_reasons_and_no_probabilities(sources):
    reason = "the DICOM Modality is CT, not MR"
    refused = _series([_refused(f"slice {i + 1}", reason, "metadata") for i in range(3)])
    objects = build_results(sources, refused, INFO, software=SOFTWARE)
    assert objects.captures == () and objects.pdf is None and len(objects.datasets) == 1
    assert "series verdict and 3 slice assessments" in objects.describe()[0]
    reading = read_sr(objects.sr)
    assert reading.summary.startswith("Not classified: the input gate refused all 3 slices")
    assert reading.series_probability is None
    assert all(s.refusal == reason and s.probabilities == {} and s.state == "refused" for s in reading.slices)
    assert "(122157,DCM" not in sr_text(objects.sr)


def test_an_uncalibrated_model_folder_gives_no_prediction_set_and_says_so(sources):
    plain = _series([Assessment(f"slice {i + 1}", NAMES, (0.7, 0.1, 0.1, 0.1), (0.7, 0.1, 0.1, 0.1))
                     for i in range(3)])
    sr = build_results(sources, plain, INFO, software=SOFTWARE).sr
    assert all(s.prediction_set is None and s.answer == "glioma" for s in read_sr(sr).slices)
    assert "Prediction set" not in sr_text(sr) and "This model folder is not calibrated" in sr_text(sr)


def test_text_beyond_ascii_survives_whatever_the_source_character_set(sources, tmp_path):
    """The rule's minus sign and a Latin-1 patient name come back intact: results are written in UTF-8."""
    latin = copy.deepcopy(sources)
    for ds in latin:
        ds.PatientName = "Müller^Zoë"
    refused = _series([_refused(f"slice {i + 1}", "brightness −3σ outside the range", "image") for i in range(3)])
    refused.rule = "the highest tumour probability over the slices, 1 − P(No tumour)"
    objects = build_results(latin, refused, INFO, pdf=PDF, software=SOFTWARE)
    for number, ds in enumerate(objects.datasets):
        back = pydicom.dcmread(_written(ds, tmp_path, f"{number}.dcm"))
        assert back.SpecificCharacterSet == "ISO_IR 192" and back.PatientName == "Müller^Zoë"
        assert shutil.which("dciodvfy") is None or _validator_errors(tmp_path / f"{number}.dcm") == []
    reading = read_sr(pydicom.dcmread(tmp_path / "0.dcm"))
    assert "1 − P(No tumour)" in sr_text(pydicom.dcmread(tmp_path / "0.dcm"))
    assert reading.slices[0].refusal == "brightness −3σ outside the range"


def test_sr_text_lists_the_content_tree_as_dsrdump_does(objects, tmp_path):
    text = sr_text(objects.sr)
    assert text.splitlines()[0] == '<CONTAINER:(18748-4,LN,"Diagnostic imaging report")>'
    assert f'  <contains TEXT:(121106,DCM,"Comment")="{RESEARCH_ONLY}">' in text
    assert '    <contains CODE:(SETMEMBER,99BSXAI,"Prediction set member")=(meningioma,99BSXAI,"Meningioma")>' in text
    if shutil.which("dsrdump") is None:
        pytest.skip("dsrdump (dcmtk) is not installed: the layout was checked against it only where it is")
    dumped = subprocess.run(["dsrdump", str(_written(objects.sr, tmp_path, "sr.dcm"))], capture_output=True,
                            text=True, timeout=60).stdout
    item = re.compile(r'^( *)<(?:([a-z ]+) )?([A-Z]+):\([^)]*"([^"]*)"\)')
    ours = [m.groups() for m in map(item.match, text.splitlines()) if m]
    theirs = [m.groups() for m in map(item.match, dumped.splitlines()) if m]
    assert len(ours) == len(theirs) > 40 and ours == theirs  # same items, depth, relationship, type, concept


def test_overlay_captures_draw_each_overlay_with_its_legend():
    overlay = np.zeros((224, 224, 3), np.uint8)
    scan = ReportScan("slice 2 of 3 (rank 1 by tumour probability)", "0" * 64, overlay, _answered(
        "slice 2", (0.91, 0.04, 0.03, 0.02), ("glioma",)), "glioma",
        [ReportOverlay("Score-CAM", overlay, "heatmap", "Glioma", 1.0)])
    (capture,) = overlay_captures(scan, 1)
    assert capture.source == 1 and capture.title == "Score-CAM of Glioma, slice 2 of 3 (rank 1 by tumour probability)"
    assert capture.image.shape[1] == 256 and capture.image.shape[0] > 256  # scaled to 256 wide, title + legend added
    assert (capture.image[-10:] > 0).any()  # the legend strip is drawn


def test_sources_that_cannot_be_referenced_are_refused_with_the_reason(sources, result):
    other = copy.deepcopy(sources[2])
    other.StudyInstanceUID = "1.2.3.4"
    with pytest.raises(CaseError, match="more than one study"):
        build_results([*sources[:2], other], result, INFO, software=SOFTWARE)
    nameless = copy.deepcopy(sources[2])
    del nameless.SOPInstanceUID
    with pytest.raises(CaseError, match="no SOPInstanceUID"):
        build_results([*sources[:2], nameless], result, INFO, software=SOFTWARE)
    with pytest.raises(ValueError, match="2 source images for 3 assessed slices"):
        build_results(sources[:2], result, INFO, software=SOFTWARE)


def test_reading_an_sr_another_application_wrote_is_refused(objects):
    foreign = copy.deepcopy(objects.sr)
    foreign.ContentSequence = [item for item in objects.sr.ContentSequence
                               if item.ConceptNameCodeSequence[0].CodeValue != "SERIES"]
    with pytest.raises(CaseError, match="not written by BrainScan XAI"):
        read_sr(foreign)
