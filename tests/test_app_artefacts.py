"""Pages keep working on bad artefacts: each problem gives a clear message and the rest of the page still renders."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import streamlit as st

from core.errors import ExplainError
from core.model.card import load_card
from core.model.catalog import sample_scans
from core.xai.evaluation import RESULTS_FILE
from core.xai.explainers.background import BACKGROUND_FILE
from tests.test_app_pages import _app, _overlay_labels, app_env, evaluated_model  # noqa: F401 (fixtures)
from ui import state


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Results cached by earlier tests (same model, same scan) would hide the failures provoked here."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _metrics_page(monkeypatch, model_dir):
    monkeypatch.setenv("BRAINSCAN_MODEL", str(model_dir))
    at = _app()
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    return at


def _explain_page(model_dir=None, monkeypatch=None):
    if model_dir is not None:
        monkeypatch.setenv("BRAINSCAN_MODEL", str(model_dir))
    at = _app()
    at.button(key=state.SAMPLE_PREFIX + sample_scans()[0].name).click().run()
    at.switch_page("pages/explain.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("content", ["{broken", "[]", json.dumps({"methods": "none"})])
def test_metrics_page_with_a_corrupt_xai_eval(app_env, evaluated_model, monkeypatch, content):
    (evaluated_model / RESULTS_FILE).write_text(content)
    at = _metrics_page(monkeypatch, evaluated_model)
    assert any("XAI evaluation of this model cannot be shown" in e.value and RESULTS_FILE in e.value
               for e in at.error)
    assert "Confusion matrices" in [s.value for s in at.subheader]
    assert len(at.table) >= 2  # the headline and per-class tables are still there


def test_metrics_page_with_a_card_without_confusion_matrices(app_env, evaluated_model, monkeypatch):
    card = load_card(evaluated_model)
    for split in card.evaluation.values():
        if isinstance(split, dict):
            split.pop("confusion_matrix", None)
    card.save(evaluated_model)
    at = _metrics_page(monkeypatch, evaluated_model)
    assert any("no confusion matrix" in i.value for i in at.info)
    assert not [c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap"]
    assert "Per class" in [s.value for s in at.subheader]
    assert any("Scans of this class found (sensitivity / recall)" in t.value.columns for t in at.table)


def test_explain_page_with_a_corrupt_shap_background(app_env, tiny_model_dir, monkeypatch):
    model_dir = app_env / "corrupt-background"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / BACKGROUND_FILE).write_bytes(b"PK\x03\x04 not a zip archive")
    at = _explain_page(model_dir, monkeypatch)
    assert any(e.value.startswith("SHAP:") and BACKGROUND_FILE in e.value for e in at.error)
    assert _overlay_labels(at) == ["Score-CAM", "LIME"]


def test_explain_page_when_every_method_fails(app_env, monkeypatch):
    def fail(*args, **kwargs):
        raise ExplainError("provoked failure")

    monkeypatch.setattr("core.xai.explainers.explain", fail)
    at = _explain_page()
    assert [e.value.split(":")[0] for e in at.error] == ["Score-CAM", "SHAP", "LIME"]
    assert any("Every explanation method failed" in w.value for w in at.warning)
    assert len(at.get("image")) == 1  # the scan itself


def test_explain_page_when_a_metric_fails(app_env, monkeypatch):
    def fail(*args, **kwargs):
        raise ExplainError("the map is constant")

    monkeypatch.setattr("core.xai.metrics.evaluate_map", fail)
    at = _explain_page()
    at.button(key=state.MEASURE).click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [f"Faithfulness of {m}: the map is constant"
                                          for m in ("Score-CAM", "SHAP", "LIME")]
    assert _overlay_labels(at) == ["Score-CAM", "SHAP", "LIME"]


def test_metrics_page_shows_the_bundled_models_reproduce_command(app_env, monkeypatch):
    bundled = Path(__file__).resolve().parent.parent / "assets" / "models" / "default"
    command = load_card(bundled).training["reproduce_command"]
    at = _metrics_page(monkeypatch, bundled)
    assert "--crop=head --augment=robust" in command and "--tumour-collection=" in command and "--normal-pool=" in command
    assert any(block.value == command for block in at.code)
