"""The clinical workflow in the app (AppTest): no stale results, URL state, series, feedback, report, audit."""
from __future__ import annotations

import io
from pathlib import Path

from pypdf import PdfReader

from core.model.catalog import sample_scans
from core.model.inference import classify
from core.store.audit import AuditStore
from tests.dicom_builder import mr_slice
from tests.test_app_pages import REPO, _app, app_env  # noqa: F401 (fixture)
from ui import state
from ui.presentation import format_probability, predictions_frame, results_title


def _named_app():
    """The app with "Show file names" on: these tests follow scans by their file names (the de-identified
    default is tested in tests/test_hostile_files.py and test_deidentified_labels_by_default below)."""
    at = _app()
    at.sidebar.toggle(key=state.SHOW_FILE_NAMES).set_value(True).run()
    return at


def _subheaders(at) -> list[str]:
    return [s.value for s in at.subheader]


def _files(paths: list[Path]) -> list[tuple[str, bytes, str]]:
    return [(p.name, p.read_bytes(), "image/jpeg") for p in paths]


def _series_files() -> list[tuple[str, bytes, str]]:
    from core.io.images import read_image

    grays = [read_image(p)[:, :, 0] for p in sample_scans()[:3]]
    # uploaded out of order: the app orders them by position
    return [(f"IM{i}.dcm", mr_slice(g, 10.0 - 5 * i, i + 1), "application/dicom") for i, g in enumerate(grays)]


def test_removing_uploads_leaves_no_stale_result_or_error(app_env):
    at = _named_app()
    good = sample_scans()[0]
    at.file_uploader(key=state.UPLOADS).set_value([(good.name, good.read_bytes(), "image/jpeg"),
                                                   ("broken.png", b"not an image", "image/png")]).run()
    assert not at.exception, at.exception
    assert any("broken.png" in e.value for e in at.error)
    assert f"Results for {results_title(1, 1)}" in _subheaders(at) and "Results for 1 scan (1 file" in _subheaders(at)[0]
    at.file_uploader(key=state.UPLOADS).set_value([("broken.png", b"not an image", "image/png")]).run()
    assert not any(s.startswith("Result for") for s in _subheaders(at)) and at.error  # only the broken file's error
    at.file_uploader(key=state.UPLOADS).set_value(None).run()
    assert not at.exception, at.exception
    assert not at.error and not any(s.startswith("Result") for s in _subheaders(at))
    assert not at.get("plotly_chart")
    assert any("Upload a scan" in i.value for i in at.info)


def test_sample_replaces_uploads_and_result_names_its_scan(app_env, tiny_model):
    at = _named_app()
    uploaded = sample_scans()[:2]
    at.file_uploader(key=state.UPLOADS).set_value(_files(uploaded)).run()
    assert list(at.dataframe[0].value["file"]) == [p.name for p in uploaded]
    at.selectbox(key=state.SCAN).set_value(uploaded[1].name).run()
    expected = classify(*tiny_model, uploaded[1])
    assert f"Result for {uploaded[1].name}" in _subheaders(at)
    assert f"{format_probability(expected.confidence)} probability" in "\n".join(m.value for m in at.markdown)
    image = at.get("image")[0].proto.imgs[0]
    assert image.alt == f"MRI scan {uploaded[1].name}; assessment: {expected.headline}"
    sample = sample_scans()[3]
    at.button(key=state.SAMPLE_PREFIX + sample.name).click().run()
    assert not at.exception, at.exception
    assert _subheaders(at)[0] == f"Result for {sample.name}"
    assert not at.dataframe  # the user's files are gone, not shown beside the sample
    assert not [u for u in at.get("file_uploader") if u.proto.id and u.value]  # the uploader was cleared


def test_model_and_case_come_from_and_go_to_the_url(app_env, tiny_model_dir):
    at = AppTestWithParams({"case": "CASE-URL-1", "model": str(tiny_model_dir)})
    assert at.sidebar.text_input(key=state.CASE_INPUT).value == "CASE-URL-1"
    assert at.sidebar.selectbox(key=state.MODEL).value == str(tiny_model_dir)
    assert at.query_params["case"] == "CASE-URL-1" and at.query_params["model"] == str(tiny_model_dir)
    at.sidebar.text_input(key=state.CASE_INPUT).set_value("CASE-2").run()
    assert at.query_params["case"] == "CASE-2"
    at.sidebar.text_input(key=state.CASE_INPUT).set_value("Jane Doe").run()
    assert any("not allowed" in e.value for e in at.sidebar.error) and at.query_params["case"] == "CASE-2"
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    assert [s.label for s in at.main.selectbox] == []  # one model selector: the sidebar's
    bad = AppTestWithParams({"case": "not valid!", "model": "/nowhere"})
    assert bad.sidebar.text_input(key=state.CASE_INPUT).value.startswith("CASE-")
    assert bad.sidebar.selectbox(key=state.MODEL).value == str(tiny_model_dir)


def AppTestWithParams(params: dict[str, str]):  # noqa: N802 (reads like a constructor)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def test_failed_files_are_in_the_csv_with_their_reason_and_grammar():
    assert results_title(1) == "1 scan" and results_title(3) == "3 scans"
    assert results_title(2, 2) == "2 scans (2 files could not be read)"
    frame = predictions_frame([], failures={"broken.png": "broken.png: not a readable image"})
    assert frame.to_dict("records") == [{"file": "broken.png", "assessment": "not read", "answer": "not classified",
                                         "error": "broken.png: not a readable image"}]


def test_theme_is_not_forced():
    lines = [line.split("=")[0].strip() for line in (REPO / ".streamlit" / "config.toml").read_text().splitlines()
             if not line.lstrip().startswith("#")]
    assert "base" not in lines and "backgroundColor" not in lines and "textColor" not in lines


def test_series_feedback_report_and_audit(app_env, tiny_model):
    at = _named_app()
    at.sidebar.text_input(key=state.CASE_INPUT).set_value("CASE-SERIES").run()
    at.file_uploader(key=state.UPLOADS).set_value(_series_files()).run()
    assert not at.exception, at.exception
    assert _subheaders(at)[0] == "DICOM series: 3 slices"
    summary = at.info[0].value
    assert "Series tumour probability" in summary and "Rule: the highest tumour probability" in summary
    labels = at.select_slider(key=state.SCAN).options
    assert labels == ["Slice 1 · +0.0 mm", "Slice 2 · +5.0 mm", "Slice 3 · +10.0 mm"]
    top = at.select_slider(key=state.SCAN).value  # the most suspicious slice is shown first
    assert f"at slice {labels.index(top) + 1} of 3" in summary and f"Result for {top}" in _subheaders(at)
    assert any(e.label == "DICOM technical header" for e in at.expander)
    header = at.table[0].value
    assert header.loc["Series description", "Value"] == "T1 AX POST GD" and "Doe" not in header.to_string()

    form = f"{state.FEEDBACK_PREFIX}"
    at.radio(key=next(r.key for r in at.radio if r.key.startswith(form + "verdict"))).set_value("Wrong")
    at.selectbox(key=next(s.key for s in at.selectbox if s.key and s.key.startswith(form + "class"))).set_value(
        "meningioma")
    at.text_area(key=next(t.key for t in at.text_area if t.key.startswith(form + "note"))).set_value("looks normal")
    at.button(key=next(b.key for b in at.button if b.key and "FormSubmitter" in b.key and "feedback" in b.key)).click()
    at.run()
    assert not at.exception, at.exception
    assert any("Feedback recorded" in s.value for s in at.success)

    at.multiselect(key=state.REPORT_METHODS).set_value(["scorecam"]).run()
    at.button(key=state.REPORT_BUILD).click().run()
    assert not at.exception, at.exception
    assert at.get("download_button")
    pdf = at.session_state[state.REPORT_PDF][1]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "CASE-SERIES" in text and "Series tumour probability" in text and "Score-CAM" in text

    first = at.button(key=f"{state.EXPLAIN_SLICE_PREFIX}0")
    first.click().run()
    assert not at.exception, at.exception
    assert any("Explaining **Slice 1 · +0.0 mm**" in c.value for c in at.caption)
    at.switch_page("pages/classify.py").run()  # back to the case: the uploader is re-created empty, the scans stay
    assert not at.exception, at.exception
    assert _subheaders(at)[:2] == ["DICOM series: 3 slices", "Result for Slice 1 · +0.0 mm"]

    store = AuditStore()
    records = store.records(case_id="CASE-SERIES")
    events = [r.event for r in records]
    assert events.count("classification") == 3 and "feedback" in events and "report" in events
    assert "explanation" in events
    feedback = next(r for r in records if r.event == "feedback")
    assert feedback.result["agree"] is False and feedback.result["note"] == "looks normal"
    assert feedback.result["correct_class"] == "meningioma"
    assert all("IM0" not in str(r.to_row()) for r in records)

    at.switch_page("pages/audit_trail.py").run()
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == len(records)
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    assert any(m.value == "**Disagreements: 1**" for m in at.markdown)


def test_replacing_scans_replaces_results(app_env, tiny_model):
    at = _named_app()
    first, second = sample_scans()[:2], sample_scans()[2:4]
    at.file_uploader(key=state.UPLOADS).set_value(_files(first)).run()
    at.file_uploader(key=state.UPLOADS).set_value(_files(second)).run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["file"]) == [p.name for p in second]
    assert _subheaders(at)[1] == f"Result for {second[0].name}"


def test_deidentified_labels_by_default(app_env):
    """Without the toggle, no file name reaches the page, the table or the CSV: 'Scan N (hash)' instead."""
    at = _app()
    uploaded = sample_scans()[:2]
    at.file_uploader(key=state.UPLOADS).set_value(_files(uploaded) + [("Doe_John.png", b"not an image",
                                                                         "image/png")]).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert [f.split(" (")[0] for f in table["file"]] == ["Scan 1", "Scan 2", "Scan 3"]
    shown = " ".join([*map(str, table["file"]), *table.get("error", []), *(e.value for e in at.error),
                      *_subheaders(at), *(c.value for c in at.caption)])
    assert not any(name in shown for name in [p.name for p in uploaded] + ["Doe_John"])
    assert "Doe_John" not in str(at.main)  # (the sample buttons name the public samples on purpose)
    assert any(s.startswith("Result for Scan ") for s in _subheaders(at))


def test_a_series_uploaded_with_an_image_keeps_both_apart(app_env):
    """No whole-upload rejection: a series with an image keeps the series and names the image; a series that cannot
    be read (two patients) is reported while the image beside it is still classified."""
    from core.io.images import read_image

    image = _files(sample_scans()[:1])
    at = _named_app()
    at.file_uploader(key=state.UPLOADS).set_value(_series_files() + image).run()
    assert not at.exception, at.exception
    assert _subheaders(at)[0] == "DICOM series: 3 slices"
    assert any(image[0][0] in e.value and "not part of it" in e.value for e in at.error)
    grays = [read_image(p)[:, :, 0] for p in sample_scans()[:2]]
    mixed = [(f"P{i}.dcm", mr_slice(g, 5.0 * i, i + 1, patient_id=f"PID-{i}"), "application/dicom")
             for i, g in enumerate(grays)]
    at.file_uploader(key=state.UPLOADS).set_value(mixed + image).run()
    assert not at.exception, at.exception
    assert any("DICOM series (2 files) cannot be read" in e.value and "patients" in e.value for e in at.error)
    assert f"Result for {image[0][0]}" in _subheaders(at)
