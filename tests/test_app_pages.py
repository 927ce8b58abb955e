"""Every page through Streamlit's AppTest, against the tiny model (independent of the bundled model)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.model.card import load_card
from core.model.catalog import sample_class, sample_scans
from core.model.inference import classify
from core.training import run_files as rf
from core.xai.evaluation import save_results
from ui import state
from ui.presentation import XAI_COLUMNS, format_probability, scan_labels

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 180


@pytest.fixture
def app_env(tiny_model_dir, tmp_path, monkeypatch):
    """The app pointed at the tiny model and an empty runs folder; errors shown in full for debugging."""
    monkeypatch.setenv("BRAINSCAN_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("BRAINSCAN_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("BRAINSCAN_STATE_DIR", str(tmp_path / "state"))  # the audit trail of this test only
    monkeypatch.delenv("BRAINSCAN_DB_URL", raising=False)
    monkeypatch.setenv("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "full")
    monkeypatch.chdir(REPO)
    return tmp_path


def _app() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def test_notice_on_first_page_and_missing_model_message(app_env, monkeypatch):
    at = _app()
    assert "not a medical device" in "\n".join(c.value for c in at.caption)
    monkeypatch.setenv("BRAINSCAN_MODEL", str(app_env / "no-model"))
    at = _app()
    assert any("No model is available" in e.value for e in at.error)


def test_sample_scan_is_classified(app_env, tiny_model):
    sample = sample_scans()[0]
    expected = classify(*tiny_model, sample)
    at = _app()
    at.button(key=state.SAMPLE_PREFIX + sample.name).click().run()
    assert not at.exception, at.exception
    assert expected.headline in _markdown(at)
    assert f"{format_probability(expected.confidence)} probability" in _markdown(at)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sorted(chart["data"][0]["x"]) == pytest.approx(sorted(expected.probabilities.values()), abs=1e-6)
    from ui.trust_view import sample_disagreement

    disagreement = sample_disagreement(sample_class(sample), expected)
    expected_warnings = [*expected.warnings, *([disagreement] if disagreement else [])]
    assert [w.value for w in at.warning] == expected_warnings


def test_several_uploads_give_a_table_and_csv(app_env, tiny_model):
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in sample_scans()[:3]]
    at = _app()
    at.file_uploader(key=state.UPLOADS).set_value(files).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["file"]) == list(scan_labels({f[0]: f[1] for f in files}).values())
    assert all(label.startswith("Scan ") for label in table["file"]), "file names are not shown by default"
    csv = at.get("download_button")[0].proto
    assert csv.label == "Download results (CSV)"
    expected = classify(*tiny_model, sample_scans()[1])
    assert table.loc[1, "answer"] == expected.headline
    assert table.loc[1, "confidence"] == format_probability(expected.confidence)
    assert at.get("download_button")


def test_unreadable_upload_shows_an_error_not_a_traceback(app_env):
    at = _app()
    at.file_uploader(key=state.UPLOADS).set_value(("broken.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert any(e.value.startswith("Scan 1 (") and "not a readable image" in e.value for e in at.error)
    assert not any("broken.png" in e.value for e in at.error), "the file name is hidden unless asked for"
    at.sidebar.toggle(key=state.SHOW_FILE_NAMES).set_value(True).run()
    assert any("broken.png" in e.value for e in at.error)


def test_the_chosen_scan_is_the_one_explained_and_kept_across_pages(app_env):
    """Streamlit resets a widget key another page reuses: the choice is kept outside the widgets (keep_scan_choice)."""
    at = _app()
    at.sidebar.toggle(key=state.SHOW_FILE_NAMES).set_value(True).run()
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in sample_scans()[:3]]
    at.file_uploader(key=state.UPLOADS).set_value(files).run()
    at.selectbox(key=state.SCAN).set_value(files[2][0]).run()
    at.session_state[state.TOGGLE_PREFIX + "shap"] = False
    at.session_state[state.TOGGLE_PREFIX + "lime"] = False
    at.switch_page("pages/explain.py").run()
    assert not at.exception, at.exception
    caps = [c.value for c in at.caption]
    assert any(f"Explaining **{files[2][0]}**" in c for c in caps), [c for c in caps if "Explaining" in c]
    at.switch_page("pages/classify.py").run()
    assert at.selectbox(key=state.SCAN).value == files[2][0]


def _overlay_labels(at: AppTest) -> list[str]:
    return [image.captions[0].split(" · ")[0] for image in at.get("image")]


def test_explain_page_toggles_methods(app_env):
    at = _app()
    at.button(key=state.SAMPLE_PREFIX + sample_scans()[0].name).click().run()
    at.switch_page("pages/explain.py").run()
    assert not at.exception, at.exception
    assert _overlay_labels(at) == ["Score-CAM", "SHAP", "LIME"]
    at.toggle(key=state.TOGGLE_PREFIX + "shap").set_value(False).run()
    assert _overlay_labels(at) == ["Score-CAM", "LIME"]
    at.toggle(key=state.TOGGLE_PREFIX + "shap").set_value(True).run()
    assert _overlay_labels(at) == ["Score-CAM", "SHAP", "LIME"]
    at.button(key=state.MEASURE).click().run()
    assert not at.exception, at.exception
    metrics = at.dataframe[0].value
    assert list(metrics.index) == ["Score-CAM", "SHAP", "LIME"]
    assert len(at.get("plotly_chart")) == 2


def test_explain_page_uses_the_model_folders_shap_background(app_env, tiny_model_dir, monkeypatch):
    """The app explains as the CLI and the evaluation do: SHAP against the background cached with the model."""
    import numpy as np

    from core.xai.explainers.background import save_background

    model_dir = app_env / "model-with-background"
    shutil.copytree(tiny_model_dir, model_dir)
    size = load_card(model_dir).image_size
    save_background(model_dir, np.full((4, size, size, 3), 60, np.uint8))
    monkeypatch.setenv("BRAINSCAN_MODEL", str(model_dir))
    at = _app()
    at.button(key=state.SAMPLE_PREFIX + sample_scans()[0].name).click().run()
    at.switch_page("pages/explain.py").run()
    assert not at.exception, at.exception
    notes = "\n".join(c.value for c in at.caption)
    assert "background: 4 training images" in notes and "blurred copies" not in notes


XAI_RESULTS = {
    "n_images": 4,
    "settings": {"sanity": {"label": "Sanity check", "description": "Spearman correlation with a randomised model."}},
    "methods": {
        "scorecam": {"kind": "method", "label": "Score-CAM", "deletion_auc": {"mean": 0.21, "ci95": [0.1, 0.3]},
                     "insertion_auc": {"mean": 0.66, "ci95": [0.5, 0.8]},
                     "faithfulness_correlation": {"mean": 0.12, "ci95": [0.0, 0.2]},
                     "sanity_rank_correlation": {"mean": 0.05, "ci95": [-0.1, 0.2]},
                     "seconds_per_image": {"mean": 0.4, "ci95": [0.3, 0.5]}},
        "random": {"kind": "baseline", "label": "Random map", "deletion_auc": {"mean": 0.4, "ci95": [None, None]},
                   "insertion_auc": {"mean": None, "ci95": [None, None]}}},
}


@pytest.fixture
def evaluated_model(tiny_model_dir, tiny_dataset, tmp_path, tiny_model):
    """A copy of the tiny model whose card holds a real evaluation and whose folder holds a history."""
    from core.evaluation.evaluate import evaluate_loaded_model

    out = tmp_path / "evaluated"
    shutil.copytree(tiny_model_dir, out)
    card = load_card(out)
    card.evaluation = evaluate_loaded_model(tiny_model[0], card, str(tiny_dataset))
    card.name = "evaluated-tiny"
    card.save(out)
    rf.write_json(out / rf.HISTORY_FILE, [
        {"phase": "head", "global_epoch": 1, "loss": 1.2, "val_loss": 1.3, "accuracy": 0.4, "val_accuracy": 0.3},
        {"phase": "finetune", "global_epoch": 2, "loss": 0.6, "val_loss": 0.7, "accuracy": 0.8, "val_accuracy": 0.7}])
    save_results(out, XAI_RESULTS)
    return out


def test_dashboard_renders_confusion_matrices(app_env, evaluated_model, monkeypatch):
    monkeypatch.setenv("BRAINSCAN_MODEL", str(evaluated_model))
    evaluation = load_card(evaluated_model).evaluation
    at = _app()
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heatmaps = [c for c in charts if c["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == sum(s in evaluation for s in ("validation", "test", "test_unseen", "test_leakage_free"))
    assert heatmaps[1]["data"][0]["z"] == evaluation["test"]["confusion_matrix"]
    headline = at.table[0].value
    assert headline.loc["Share of scans classified correctly (accuracy)"].iloc[1].startswith(
        f"{evaluation['test']['accuracy']:.4f}")
    at.segmented_control(key=state.CONFUSION_MODE).set_value("Normalised by true class").run()
    z = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]["z"]
    assert all(abs(sum(row) - 1) < 1e-9 for row in z if sum(row))
    assert any(c["data"][0].get("name", "").startswith("training") for c in charts)
    xai = at.table[-1].value
    deletion, insertion = (XAI_COLUMNS[k] for k in ("deletion_auc", "insertion_auc"))
    assert xai.loc["Score-CAM", deletion] == "0.2100 [0.100–0.300]"
    assert xai.loc["Random map", deletion] == "0.4000"
    assert xai.loc["Random map", insertion] == "–"


def test_dashboard_without_evaluation_explains_why(app_env):
    at = _app()
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    assert any("no evaluation" in i.value for i in at.info)


def test_reruns_keep_the_keras_session(app_env, monkeypatch):
    """Streamlit clears the Keras session after each run, which drops TF's compiled kernels (0.43 s per run)."""
    import keras
    import matplotlib.pyplot as plt
    from streamlit.runtime.scriptrunner import script_runner

    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    at = _app()
    plt.figure()
    at.run()
    assert not at.exception, at.exception
    assert cleared == []
    assert plt.get_fignums() == []


@pytest.mark.parametrize("page", ["pages/explain.py", "pages/metrics.py"])
def test_every_page_runs_inside_app_py_with_its_sidebar(app_env, page):
    """The reason for app.py's url_paths: a page whose URL hash equals a `pages/` file's hash would run alone,
    without app.py's sidebar (model picker, launcher). Checked on every page switched to."""
    at = _app()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert "Active model" in [s.label for s in at.sidebar.selectbox]
