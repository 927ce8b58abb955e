"""One assessment on every surface: a refused, a confident, an uncertain (several classes) and a low-confidence scan
show the same verdict, the same calibrated probability (to the printed digit) and the same prediction set on
Classify, Explain, the results table / CSV, the PDF report, the audit record and `predict --json`; a DICOM series
shows each slice's assessment in the series view and the PDF's series table.

Runs the bundled (calibrated) model on real Testing scans chosen for their state; skipped without the real data.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.model.assessment import State, percent
from core.model.factory import default_model_dir, load_model
from core.model.inference import classify
from core.model.trust import load_trust
from core.store.audit import AuditStore
from tests.conftest import REAL_DATA
from tests.test_app_pages import REPO
from tests.test_trust import _pydicom_file
from ui import state

# Testing scans whose state under the bundled model is the one named (checked below, so a new bundled model that
# answers differently fails loudly here instead of testing less). The model bundled on 2026-12-01 gives no Testing
# scan an empty prediction set (0 of 1311), so the "no class" state is covered by the synthetic tests only.
SCANS = {"confident": "glioma/Te-glTr_0001.jpg", "several": "glioma/Te-gl_0018.jpg",
         "low_confidence": "glioma/Te-gl_0022.jpg", "refused": "glioma/Te-gl_0024.jpg"}
CASE = "CASE-ONE-TRUTH"


@pytest.fixture(scope="module")
def bundled():
    if not (REAL_DATA / "Testing").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA} (set BRAINSCAN_DATA)")
    folder = default_model_dir()
    model, card = load_model(folder)
    return folder, model, card, load_trust(folder, card.class_names)


@pytest.fixture
def files(bundled) -> dict[str, bytes]:
    out = {Path(rel).name: (REAL_DATA / "Testing" / rel).read_bytes() for rel in SCANS.values()}
    out["ct.dcm"] = _pydicom_file("CT_small.dcm").read_bytes()
    return out


@pytest.fixture
def bundled_app(bundled, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSCAN_MODEL", str(bundled[0]))
    monkeypatch.setenv("BRAINSCAN_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("BRAINSCAN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("BRAINSCAN_DB_URL", raising=False)
    monkeypatch.chdir(REPO)
    return tmp_path


def _app():
    """The app on the bundled model; a generous time limit per run (the bundled model's maps on 2 busy cores)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=900)
    at.run()
    assert not at.exception, at.exception
    return at


def _expected(bundled, files):
    _, model, card, trust = bundled
    return {name: classify(model, card, data, name, trust=trust) for name, data in files.items()}


def _texts(at) -> str:
    parts = [*(m.value for m in at.markdown), *(e.value for e in at.error), *(w.value for w in at.warning),
             *(s.value for s in at.success), *(c.value for c in at.caption)]
    return "\n".join(str(p) for p in parts)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_chosen_scans_are_in_the_states_they_stand_for(bundled, files):
    expected = _expected(bundled, files)
    for state_name, rel in SCANS.items():
        assert expected[Path(rel).name].state.value == state_name, rel
    assert expected["ct.dcm"].state is State.REFUSED and expected["ct.dcm"].refusal_layer == "metadata"


def test_every_surface_shows_the_same_assessment(bundled, files, bundled_app, capsys, tmp_path):
    expected = _expected(bundled, files)
    at = _app()
    at.sidebar.toggle(key=state.SHOW_FILE_NAMES).set_value(True).run()
    at.sidebar.text_input(key=state.CASE_INPUT).set_value(CASE).run()
    at.file_uploader(key=state.UPLOADS).set_value([(n, d, "application/octet-stream") for n, d in files.items()])
    at.run()
    assert not at.exception, at.exception

    # the results table (and its CSV, the same frame): verdict, printed probability and set per row
    table = at.dataframe[0].value.set_index("file")
    for name, answer in expected.items():
        row = table.loc[name]
        assert row["answer"] == answer.headline and row["assessment"] == answer.state_text, name
        assert row["confidence"] == ("" if answer.refused else percent(answer.confidence)), name
        assert row["prediction set"] == answer.set_text(), name
        if answer.refused:
            assert all(row[c] == "" for c in table.columns if c.startswith("p(")), "a refused row shows no numbers"

    # Classify's details and Explain, scan by scan
    for name, answer in expected.items():
        at.selectbox(key=state.SCAN).set_value(name).run()
        assert not at.exception, at.exception
        shown = _texts(at)
        assert answer.headline in shown, name
        feedback = [r for r in at.radio if r.key and r.key.startswith(state.FEEDBACK_PREFIX)]
        if answer.refused:
            assert answer.refusal in shown and not at.get("plotly_chart") and not feedback
            assert not any("Why?" in str(link.proto.label) for link in at.get("page_link"))
        else:
            assert percent(answer.confidence) in shown and feedback and feedback[0].value is None
            assert (answer.set_text() in shown) and (answer.state is not State.CONFIDENT) == bool(answer.warnings)
            for warning in answer.warnings:
                assert warning in [w.value for w in at.warning]
        at.session_state[state.TOGGLE_PREFIX + "shap"] = False  # one fast map is enough to reach the overlays
        at.session_state[state.TOGGLE_PREFIX + "lime"] = False
        at.switch_page("pages/explain.py").run()
        assert not at.exception, at.exception
        explained = _texts(at)
        assert answer.headline in explained, name
        if answer.refused:
            assert answer.refusal in explained and not at.get("image"), "no overlay for a refused scan"
        else:
            assert percent(answer.confidence) in explained and at.get("image")
        at.switch_page("pages/classify.py").run()

    # the PDF built in the app
    at.multiselect(key=state.REPORT_METHODS).set_value(["scorecam"]).run()
    at.button(key=state.REPORT_BUILD).click().run()
    assert not at.exception, at.exception
    pdf = _flat(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(at.session_state[state.REPORT_PDF][1])).pages))
    for name, answer in expected.items():
        assert answer.headline in pdf, name
        if answer.refused:
            assert _flat(answer.refusal) in pdf
        else:
            assert percent(answer.confidence) in pdf and f"Prediction set: {answer.set_text()}" in pdf
    assert "Known limits of this model" in pdf

    # the audit trail and predict --json hold the same record
    records = {r.scan_hash: r.result for r in AuditStore().records(case_id=CASE) if r.event == "classification"}
    from core.store.cases import sha256_bytes

    for name, answer in expected.items():
        assert records[sha256_bytes(files[name])] == answer.audit_record(), name
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    from core.cli import main

    capsys.readouterr()
    assert main(["predict", "--json", "--model", str(bundled[0]), *paths]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for line, (name, answer) in zip(lines, expected.items()):
        line.pop("file")
        assert line == answer.audit_record(), name


def test_the_series_view_and_its_report_show_each_slices_assessment(bundled, bundled_app):
    from core.io.images import read_image
    from core.io.series import load_series
    from tests.dicom_builder import mr_slice

    _, model, card, trust = bundled
    grays = [read_image(REAL_DATA / "Testing" / rel)[:, :, 0] for rel in list(SCANS.values())[:3]]
    upload = {f"IM{i}.dcm": mr_slice(g, 5.0 * i, i + 1) for i, g in enumerate(grays)}
    series = load_series(upload)
    expected = [classify(model, card, s.png, s.label, trust=trust) for s in series.slices]
    at = _app()
    at.file_uploader(key=state.UPLOADS).set_value([(n, d, "application/dicom") for n, d in upload.items()]).run()
    assert not at.exception, at.exception
    shown = _texts(at)
    for s, answer in zip(series.slices, expected):
        if not answer.refused:
            assert f"{percent(1 - answer.probabilities['notumor'])} · {answer.headline}" in shown, s.label
    at.multiselect(key=state.REPORT_METHODS).set_value([]).run()
    at.button(key=state.REPORT_BUILD).click().run()
    assert not at.exception, at.exception
    pdf = _flat(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(at.session_state[state.REPORT_PDF][1])).pages))
    for s, answer in zip(series.slices, expected):
        assert _flat(answer.headline) in pdf, s.label
