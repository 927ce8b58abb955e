"""The case report: PDF text (pypdf), rendering (pdftoppm), the CLI, series reports, legends, the audit record."""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from core.cli import main
from core.io.images import read_image
from core.model.catalog import sample_scans
from core.report.case import make_case_report, parse_methods
from core.report.legend import legend_strip, overlay_with_legend
from core.report.model_info import model_info
from core.report.pdf import DISCLAIMER
from core.store.audit import AuditStore
from core.store.cases import sha256_bytes, sha256_file
from tests.dicom_builder import mr_slice
from ui.presentation import format_probability

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "report"


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_report_of_two_scans_has_every_part(tiny_model, tiny_model_dir):
    model, card = tiny_model
    files = {p.name: p.read_bytes() for p in sample_scans()[:2]}
    pdf, report = make_case_report(model, card, tiny_model_dir, files, "CASE-0042", ["scorecam", "lime"],
                                   measure_faithfulness=True)
    assert pdf.startswith(b"%PDF")
    text = _flat(_text(pdf))
    info = model_info(tiny_model_dir, card)
    assert info.sha256 == sha256_file(tiny_model_dir / "model.keras")
    for expected in ("Case report", "CASE-0042", "tiny-test-model", info.sha256, "TinyCNN", "Scan 1", "Scan 2",
                     "Score-CAM", "LIME", "Prediction set: not available",
                     "Input gate: pixel rules passed (no learned gate: the model folder is not calibrated)",
                     "Deletion AUC", "Insertion AUC", "Research use only - not a medical device", "UTC"):
        assert expected in text, expected
    assert _flat(DISCLAIMER) in text
    for scan, (name, data) in zip(report.scans, files.items()):
        assert scan.sha256 == sha256_bytes(data) and scan.sha256 in text
        assert name not in text  # file names stay out of the report
        answer = scan.assessment
        assert answer.headline in text and format_probability(answer.confidence) in text
        assert [o.method for o in scan.overlays] == ["Score-CAM", "LIME"]
        assert all(o.faithfulness and o.seconds > 0 for o in scan.overlays)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 3  # the case page, one page per scan


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm not installed (Debian: poppler-utils)")
def test_report_renders_with_pdftoppm(tiny_model, tiny_model_dir, tmp_path):
    import cv2

    model, card = tiny_model
    pdf, _ = make_case_report(model, card, tiny_model_dir, {"a.jpg": sample_scans()[0].read_bytes()}, "CASE-R",
                              ["scorecam", "shap", "lime"])
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(tmp_path / "r.pdf"), str(tmp_path / "page")], check=True,
                   timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for page in pages:
        image = cv2.imread(str(page))
        assert image.shape[0] > image.shape[1] > 400  # A4 portrait
        assert image.std() > 10  # something is drawn
        shutil.copy(page, ARTIFACTS / page.name)
    scan_page = cv2.imread(str(pages[1]))
    red = (scan_page[:, :, 2] > 180) & (scan_page[:, :, 1] < 80)
    assert red.sum() > 50  # the overlays and their legends are in colour


def test_cli_series_report_and_audit_record(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BRAINSCAN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("BRAINSCAN_DB_URL", raising=False)
    grays = [read_image(p)[:, :, 0] for p in sample_scans()[:3]]
    paths = []
    for i, gray in enumerate(grays):
        path = tmp_path / f"Doe_Jane_{i}.dcm"
        path.write_bytes(mr_slice(gray, 10.0 - 5 * i, i + 1))
        paths.append(str(path))
    out = tmp_path / "report.pdf"
    code = main(["report", *paths, "--case-id", "CASE-S1", "--out", str(out), "--methods", "scorecam",
                 "--model", str(tiny_model_dir)])
    assert code == 0, capsys.readouterr().err
    text = _flat(_text(out.read_bytes()))
    assert "Series tumour probability" in text and "Rule: the highest tumour probability over the slices" in text
    assert "position along the slice normal" in text and "Slice 1 · +0.0 mm" in text
    assert "T1 AX POST GD" in text and "Doe" not in text and "PID-1" not in text
    records = AuditStore().records(case_id="CASE-S1")
    assert [r.event for r in records] == ["report"] and len(records[0].result["scans"]) == 3
    assert "Doe_Jane" not in (tmp_path / "state" / "audit.sqlite3").read_bytes().decode("latin-1")


def test_cli_user_errors(tiny_model_dir, tmp_path, capsys):
    scan = str(sample_scans()[0])
    assert main(["report", scan, "--case-id", "John Smith", "--out", str(tmp_path / "r.pdf"), "--no-audit",
                 "--model", str(tiny_model_dir)]) == 2
    assert "case id 'John Smith' is not allowed" in capsys.readouterr().err
    assert main(["report", scan, "--case-id", "C1", "--out", str(tmp_path / "r.pdf"), "--methods", "gradcam",
                 "--no-audit", "--model", str(tiny_model_dir)]) == 2
    assert "unknown explanation method 'gradcam'" in capsys.readouterr().err
    assert main(["report", scan, "--case-id", "C1", "--out", str(tmp_path / "no" / "r.pdf"), "--no-audit"]) == 2
    assert parse_methods("none") == [] and parse_methods("shap, lime") == ["shap", "lime"]


def test_overlay_png_carries_its_legend():
    overlay = np.full((100, 120, 3), 128, np.uint8)
    picture = overlay_with_legend(overlay, "signed", "Glioma", "SHAP")
    assert picture.shape[1] == 256 and picture.shape[0] > 256 * 100 / 120 + 28
    strip = legend_strip("heatmap", "Glioma", 256)
    bar = strip[12, 8:248]
    assert bar[0, 2] > 100 and bar[-1, 0] > 100  # jet: blue on the left, red on the right
    assert (strip[20:] < 100).any()  # the end labels are written


def test_report_shows_the_gate_and_the_prediction_set_of_a_calibrated_model():
    """The bundled model folder has a fitted gate and conformal sets: the report shows what the app shows."""
    from core.model.factory import default_model_dir, load_model
    from core.model.inference import classify
    from core.model.trust import load_trust

    folder = default_model_dir()
    model, card = load_model(folder)
    sample = next(p for p in sample_scans() if p.name.startswith("Te-pi"))
    answer = classify(model, card, sample, sample.name, trust=load_trust(folder, card.class_names))
    pdf, report = make_case_report(model, card, folder, {sample.name: sample.read_bytes()}, "CASE-TRUST",
                                   ["scorecam"])
    shown = report.scans[0].assessment
    assert shown.audit_record() == answer.audit_record() and answer.prediction_set
    text = _flat(_text(pdf))
    assert f"Prediction set: {answer.set_text()}" in text and "Input gate: accepted" in text
    text = _text(pdf)
    assert "Input gate: accepted" in text and "not available" not in text
