"""The agreement wording (`describe_agreement`) and the calibration that decides it (pure; no model, no data)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import core.xai.agreement as agreement_module
from benchmarks.agreement_calibration import (
    SCHEMA_VERSION,
    AgreementCalibration,
    ScanRecord,
    analyse,
    choose_rule,
    wilson,
)
from core.model.card import load_card
from core.xai.agreement import (
    CALIBRATION_DOC,
    DISAGREE_BELOW,
    OUTSIDE_ABOVE,
    TOP_FRACTION,
    Agreement,
    AgreementWording,
    describe_agreement,
)

REPO = Path(__file__).resolve().parent.parent
RECORD = REPO / "benchmarks" / "results" / "agreement_calibration.json"
THREE = ("scorecam", "shap", "lime")


def _result(ious: dict[tuple[str, str], float]) -> Agreement:
    result = Agreement(pairs={pair: {"top_iou": v, "spearman": 0.5} for pair, v in ious.items()})
    result.score = sum(ious.values()) / len(ious) if ious else float("nan")
    return result


def _three(iou: float) -> Agreement:
    return _result({("scorecam", "shap"): iou, ("scorecam", "lime"): iou, ("shap", "lime"): iou})


@pytest.fixture
def calibrated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calibration that found a level: 'agree' from 0.30 on, 71% of 24 scans on the tumour."""
    monkeypatch.setattr(agreement_module, "AGREE_FROM", 0.30)
    monkeypatch.setattr(agreement_module, "AGREE_ON_TUMOUR", (0.71, 24))
    monkeypatch.setattr(agreement_module, "NEUTRAL_ON_TUMOUR", (0.30, 20))
    monkeypatch.setattr(agreement_module, "DISAGREE_ON_TUMOUR", (0.20, 40))


@pytest.fixture
def uncalibrated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calibration that found no level at which agreement predicts being on the tumour."""
    monkeypatch.setattr(agreement_module, "AGREE_FROM", None)
    monkeypatch.setattr(agreement_module, "AGREE_ON_TUMOUR", None)


def test_public_names_kept():
    assert (DISAGREE_BELOW, OUTSIDE_ABOVE, TOP_FRACTION) == (0.15, 0.5, 0.10)
    assert (REPO / CALIBRATION_DOC).is_file()
    wording = describe_agreement(_three(0.2))
    assert isinstance(wording, AgreementWording) and wording.level in {"agree", "disagree", "neutral"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        wording.level = "agree"  # type: ignore[misc]


def test_the_reported_defect_is_not_called_agreement(uncalibrated):
    """The pituitary scan of the bug report: agreement 0.21, all maps off the tumour, 'The methods agree'."""
    wording = describe_agreement(_three(0.21))
    assert wording.level == "neutral"
    assert "0.21" in wording.text and "0.05" in wording.text
    assert "does not show that they point at the tumour" in wording.text
    assert "agree (" not in wording.text and "methods agree" not in wording.text.lower()


def test_agree_only_from_the_calibrated_level_and_quotes_the_rate(calibrated):
    below = describe_agreement(_three(0.29))
    assert below.level == "neutral" and "does not show" in below.text and "30%" in below.text
    at = describe_agreement(_three(0.30))
    assert at.level == "agree"
    assert "0.30" in at.text and "71%" in at.text and "n = 24" in at.text and "Training" in at.text
    assert describe_agreement(_three(0.8)).level == "agree"


def test_rates_on_few_scans_are_not_quoted(calibrated, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(agreement_module, "NEUTRAL_ON_TUMOUR", (0.50, 4))
    text = describe_agreement(_three(0.2)).text
    assert "50%" not in text and "n = 4" not in text


def test_agree_on_few_scans_is_not_said(calibrated, monkeypatch: pytest.MonkeyPatch):
    """A level the rule accepted on fewer than MIN_QUOTED_N scans: the overlap is worded neutrally, no rate."""
    monkeypatch.setattr(agreement_module, "AGREE_ON_TUMOUR", (0.83, agreement_module.MIN_QUOTED_N - 1))
    for iou in (0.30, 0.5, 1.0):
        wording = describe_agreement(_three(iou))
        assert wording.level == "neutral" and "83%" not in wording.text and "does not show" in wording.text


def test_shipped_calibration_words_the_defect_neutrally():
    """With the constants as shipped (a level accepted on 6 scans only), no overlap is ever worded as agreement."""
    shipped = agreement_module.AGREE_ON_TUMOUR
    if agreement_module.AGREE_FROM is None or shipped is None or shipped[1] < agreement_module.MIN_QUOTED_N:
        assert all(describe_agreement(_three(v)).level == "neutral" for v in (0.16, 0.21, 0.5, 1.0))


def test_uncalibrated_never_agrees(uncalibrated):
    for iou in (0.16, 0.3, 0.6, 1.0):
        assert describe_agreement(_three(iou)).level == "neutral"


def test_disagreement_wins_and_names_the_pairs(calibrated):
    result = _result({("scorecam", "shap"): 0.9, ("scorecam", "lime"): 0.9, ("shap", "lime"): 0.10})
    assert result.score > 0.30
    wording = describe_agreement(result, {"scorecam": "Score-CAM", "shap": "SHAP", "lime": "LIME"})
    assert wording.level == "disagree"
    assert "SHAP and LIME" in wording.text and f"{DISAGREE_BELOW:.2f}" in wording.text and "20%" in wording.text


def test_agree_needs_the_calibrated_methods(calibrated):
    two = _result({("scorecam", "shap"): 0.6})
    assert describe_agreement(two).level == "neutral"
    other_fraction = _three(0.6)
    other_fraction.top_fraction = 0.2
    assert describe_agreement(other_fraction).level == "neutral"


def test_nothing_to_compare():
    assert describe_agreement(Agreement()).level == "neutral"
    assert "two maps" in describe_agreement(_result({})).text


# ---------------------------------------------------------------- the calibration's analysis (synthetic records)

def _record(i: int, score: float, hits: tuple[bool, bool, bool], disagreeing: bool = False,
            cls: str = "meningioma") -> ScanRecord:
    maps = {m: {"energy_pointing": 0.2 if h else 0.01, "pointing_hit": 1.0 if h else 0.0, "rank_accuracy": 0.1}
            for m, h in zip(THREE, hits)}
    return ScanRecord(file=f"Training/{cls}/{i}.jpg", class_name=cls, source_image=f"figshare:{i}", unseen=False,
                      mask_area=0.02, predicted=cls, probability=0.9, score=score, pair_iou={},
                      disagreeing=disagreeing, maps=maps,
                      gaussian={"energy_pointing": 0.05, "pointing_hit": 0.0, "rank_accuracy": 0.0}, seconds=1.0)


def test_wilson_interval():
    rate = wilson(7, 10)
    assert rate.rate == 0.7 and rate.ci95[0] == pytest.approx(0.3968, abs=1e-3) and rate.ci95[1] == pytest.approx(
        0.8922, abs=1e-3)
    assert wilson(0, 0).rate is None


def test_rule_accepts_only_a_level_that_predicts_the_outcome():
    on, off = (True, True, False), (False, False, True)
    predictive = [_record(i, 0.05 + 0.01 * i, on if i >= 40 else off) for i in range(60)]
    rule = choose_rule(predictive, [0.25, 0.45])
    assert rule.agree_from == 0.45 and rule.agree.rate == 1.0 and rule.candidates[0].accepted
    flat = [_record(i, 0.05 + 0.01 * i, on if i % 2 else off) for i in range(60)]
    assert choose_rule(flat, [0.25, 0.45]).agree_from is None
    # agreeing scans that are all flagged as disagreeing pairs can never be called "agree"
    masked = [_record(i, 0.05 + 0.01 * i, on if i >= 40 else off, disagreeing=True) for i in range(60)]
    assert choose_rule(masked, [0.25, 0.45]).agree_from is None


def test_record_round_trip(tmp_path):
    records = [_record(i, 0.05 + 0.01 * i, (i % 3 == 0, i % 2 == 0, False)) for i in range(12)]
    edges, bins, fixed, rule = analyse(records, DISAGREE_BELOW)
    doc = AgreementCalibration(SCHEMA_VERSION, "m", "cmd", "Training", 0, 12, 12, None, 1.0, list(THREE), {}, "pred",
                               "sample", {}, "majority_hit", DISAGREE_BELOW, edges, bins, fixed, rule, records)
    again = AgreementCalibration.from_json(doc.to_json())
    assert again == doc
    assert sum(b.n for b in again.bins["all"]) == 12
    bad = json.loads(doc.to_json())
    bad["schema_version"] = 0
    with pytest.raises(ValueError, match="schema"):
        AgreementCalibration.from_json(json.dumps(bad))


def test_constants_match_the_saved_calibration():
    """The thresholds in core/xai/agreement.py are the ones the saved Training-mask calibration chose."""
    if not RECORD.is_file():
        pytest.skip("no calibration record")
    doc = AgreementCalibration.from_json(RECORD.read_text())
    if doc.model != load_card(REPO / "assets" / "models" / "default").name:
        # measured on another model: nothing of it may be quoted as a fact about the bundled model's maps
        assert (agreement_module.AGREE_FROM, agreement_module.AGREE_ON_TUMOUR, agreement_module.NEUTRAL_ON_TUMOUR,
                agreement_module.DISAGREE_ON_TUMOUR) == (None, None, None, None)
        return
    assert doc.split.startswith("Training") and all(r.file.startswith("Training/") for r in doc.records)
    rule = doc.rule
    assert rule is not None and doc.disagree_below == DISAGREE_BELOW
    assert agreement_module.AGREE_FROM == (None if rule.agree_from is None else pytest.approx(rule.agree_from,
                                                                                              abs=5e-3))
    if rule.agree_from is None:
        assert agreement_module.AGREE_ON_TUMOUR is None
    else:
        assert agreement_module.AGREE_ON_TUMOUR == (pytest.approx(rule.agree.rate, abs=5e-3), rule.agree.n)
    assert agreement_module.DISAGREE_ON_TUMOUR == (pytest.approx(rule.disagree.rate, abs=5e-3), rule.disagree.n)
    if rule.neutral.n == 0:
        assert agreement_module.NEUTRAL_ON_TUMOUR is None
    else:
        assert agreement_module.NEUTRAL_ON_TUMOUR == (pytest.approx(rule.neutral.rate, abs=5e-3), rule.neutral.n)
