"""The Explain page's agreement message, SHAP display toggle and expert outline; the metrics page's localisation table."""
from __future__ import annotations

import json
import shutil

import pytest

from core.data.masks import default_masks_dir
from core.model.catalog import sample_scans
from core.training.launcher import default_data_dir
from tests.test_app_pages import _app, app_env  # noqa: F401  (fixture)
from ui import state


def _explain(at):
    at.button(key=state.SAMPLE_PREFIX + sample_scans()[0].name).click().run()
    at.switch_page("pages/explain.py").run()
    assert not at.exception, at.exception
    return at


def test_explain_page_reports_agreement_and_outside_head(app_env):  # noqa: F811
    at = _explain(_app())
    texts = [m.value for m in [*at.success, *at.warning, *at.info]]
    assert any(t.startswith(("The maps agree", "The methods disagree", "Overlap of the maps")) for t in texts)
    assert any("Agreement = overlap (IoU)" in c.value for c in at.caption)
    at.toggle(key=state.SHAP_POSITIVE).set_value(True).run()
    assert not at.exception, at.exception


@pytest.mark.data
def test_expert_outline_toggle_for_a_dataset_scan(app_env):  # noqa: F811
    if default_masks_dir(default_data_dir()) is None:
        pytest.skip("expert masks not found beside the data folder")
    at = _explain(_app())
    toggle = at.toggle(key=state.EXPERT_OUTLINE)   # the sample is a dataset scan with an expert mask
    assert toggle.value is True
    assert any("expert tumour outline" in c.value for c in at.caption)
    toggle.set_value(False).run()
    assert not at.exception and not any("expert tumour outline" in c.value for c in at.caption)


def test_metrics_page_shows_the_localisation_table_with_floors(app_env, tiny_model_dir, monkeypatch):  # noqa: F811
    model_dir = app_env / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    cell = {"mean": 0.3, "ci95": [0.2, 0.4], "n": 5}
    entry = {"energy_pointing": {"all": cell, "glioma": cell}}
    block = {"n": 5, "per_class_n": {"glioma": 5}, "mask_area": cell,
             "maps": {"scorecam": entry, "gaussian": entry, "uniform": entry}}
    (model_dir / "xai_localisation.json").write_text(json.dumps({
        "methods": ["scorecam"], "references": {"gaussian": "Centred Gaussian", "uniform": "Uniform map"},
        "metrics": {"energy_pointing": {"label": "Energy inside the mask", "higher_is_better": True}},
        "summary": {"all": block, "unflagged": block, "unseen": block}, "command": "python -m core xai-eval",
        "unseen_definition": "no shared source", "wall_seconds": 60, "cpu_seconds": 90}))
    monkeypatch.setenv("BRAINSCAN_MODEL", str(model_dir))
    at = _app()
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    energy = "Share of the map inside the tumour (energy pointing game) ↑"  # plain words for a known metric
    table = next(t.value for t in at.table if energy in t.value.columns)
    assert list(table["Map"]) == ["scorecam", "scorecam", "Centred Gaussian", "Centred Gaussian", "Uniform map",
                                  "Uniform map"]
    assert table[energy].iloc[0] == "0.3000 [0.200–0.400]"
    at.radio(key=state.LOCALISATION_SUBSET).set_value("unseen").run()
    assert not at.exception, at.exception


def test_localisation_timing_says_which_scans_and_which_cpu_it_covers():
    from core.xai.results import LocalisationRecord
    from ui.presentation import localisation_timing

    local = LocalisationRecord(summary={}, metrics={}, n_images=300, command="python -m core xai-eval --n 300",
                               wall_seconds=3070, cpu_seconds=4549)
    assert localisation_timing(local) == "51.2 min wall, 75.8 min CPU"
    resumed = LocalisationRecord(summary={}, metrics={}, n_images=300, records_reused=192, wall_seconds=720.2,
                                 cpu_seconds=31.8, command="python -m core xai-eval --n 300 --workers 2")
    assert localisation_timing(resumed) == ("12.0 min wall for the 108 scans of the last run; 192 came from the "
                                            "checkpoint of an earlier, interrupted run; on Ray workers, whose CPU "
                                            "time is not counted")
