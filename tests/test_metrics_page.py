"""The metrics page's known limits and external validation: the table built from a card, and the page itself."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.model.card import load_card
from core.model.card_records import EvaluationRecord
from core.model.limits import headline_limit, known_limits
from tests.test_app_pages import _app, app_env  # noqa: F401 (fixture)
from ui.metrics_view import MEASURES, external_frame, rate_text, unbroken

BUNDLED = Path(__file__).resolve().parent.parent / "assets" / "models" / "default"
EXTERNAL_HEADER = "Scans from other collections (external validation)"


def _p(k: int, n: int, ci=(0.1, 0.9)) -> dict:
    return {"value": k / n, "ci95": list(ci), "k": k, "n": n}


EVALUATION = {
    "external": {
        "notumor_brisc": {"n": 30, "notumor_specificity": _p(24, 30, (0.62, 0.90)),
                          "per_plane": {"axial": {"n": 10, "notumor_specificity": _p(10, 10)},
                                        "coronal": {"n": 20, "notumor_specificity": _p(14, 20)}}},
        "far_ood": {"n": 12, "predicted": {"notumor": 12}},
        "tumour_navoneel": {"n": 56, "tumour_recall": _p(16, 54, (0.191, 0.428)),
                            "notumor_specificity": _p(1, 2)},
        "hospital_x": {"n": 5, "tumour_recall": {"value": None}},
        "broken": "not a result",
    },
    "trust": {"external": {"far_ood": {"n": 130, "refused": 0.8, "refused_ci95": [0.723, 0.86]}}},
}


def test_external_frame_one_rate_per_set_tumours_first():
    frame = external_frame(EvaluationRecord.from_json(EVALUATION))
    assert list(frame["Scans"]) == ["Tumours from another collection (navoneel, mixed sequences)",
                                    "Normal brains from another collection (BRISC 2025)", "· axial slices",
                                    "· coronal slices", "Not brain MRI (photos, X-rays, other body parts)"]
    navoneel = frame.iloc[0]
    assert navoneel["n"] == 54 and navoneel["Count"] == "16 of 54"  # the tumours, not the set's 56 files
    assert navoneel["What is measured"] == MEASURES["tumour_recall"] == "Tumours found (tumour recall)"
    assert navoneel["Rate [95% CI]"] == "29.6% [19.1–42.8%]"
    assert frame.iloc[3]["Rate [95% CI]"].startswith("70.0%")
    far = frame.iloc[-1]
    assert far["What is measured"] == "Refused by the input check (refusal rate)"
    assert (far["n"], far["Count"], far["Rate [95% CI]"]) == (130, "104 of 130", "80.0% [72.3–86.0%]")


def test_external_frame_without_results_and_rate_text():
    empty = external_frame(EvaluationRecord.from_json({}))
    assert empty.empty and list(empty.columns)[0] == "Scans"
    assert external_frame(EvaluationRecord.from_json({"external": "broken", "trust": None})).empty
    assert rate_text(0.5) == "50.0%"
    assert rate_text(0.5, [0.25, 0.75]) == "50.0% [25.0–75.0%]"


def test_unbroken_keeps_value_and_interval_on_one_line():
    import pandas as pd

    shown = unbroken(pd.DataFrame({"a": ["0.9000 [0.800–0.950]", "–"], "b": [1, 2]}))
    assert shown.loc[0, "a"] == "0.9000\u00a0[0.800\u2060–\u20600.950]"
    assert shown.loc[1, "a"] == "\u2060–\u2060" and shown.loc[1, "b"] == 2


def _metrics_page(monkeypatch, model_dir):
    monkeypatch.setenv("BRAINSCAN_MODEL", str(model_dir))
    at = _app()
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    return at


def test_metrics_page_shows_the_bundled_models_limits_and_external_results(app_env, monkeypatch):  # noqa: F811
    card = load_card(BUNDLED)
    if not card.evaluation.get("external"):
        pytest.fail("the bundled card has no external results: run `python -m core evaluate-external "
                    "../shared/data/external-eval --save`")
    at = _metrics_page(monkeypatch, BUNDLED)
    # the known limit at the top of the page, computed from the card
    headline = headline_limit(card)
    assert headline and headline.startswith("This model misses about ")
    assert at.warning[0].value == f"**Known limit.** {headline}"
    others = "\n".join(str(m.value) for m in at.expander[0].markdown)
    assert all(sentence in others for sentence in known_limits(card)[1:])
    # the external section with the rate that matters per set, from the same card
    assert EXTERNAL_HEADER in [h.value for h in at.header]
    table = next(t.value for t in at.table if "What is measured" in t.value.columns)
    recall = card.evaluation["external"]["tumour_navoneel"]["tumour_recall"]
    row = table[table["Scans"].str.startswith("Tumours, new patients of a collection seen in training")].iloc[0]
    assert int(row["n"]) == recall["n"] and row["Count"] == f"{recall['k']} of {recall['n']}"
    assert row["Rate [95% CI]"] == rate_text(recall["value"], recall["ci95"])
    assert "· coronal slices" in list(table["Scans"])
    assert "Refused by the input check (refusal rate)" in list(table["What is measured"])


def test_metrics_page_says_when_a_model_was_never_measured_elsewhere(app_env):  # noqa: F811
    at = _app()  # the tiny model: no external results in its card
    at.switch_page("pages/metrics.py").run()
    assert not at.exception, at.exception
    assert any("has not been measured on scans from other collections" in i.value for i in at.info)
    assert EXTERNAL_HEADER in [h.value for h in at.header]
    assert not at.warning or not any("Known limit" in w.value for w in at.warning)
