"""The app's non-UI logic: model registry, tables and figures built from model cards and predictions."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.model.assessment import Assessment
from core.model.card import load_card
from core.model.card_records import EvaluationRecord, SplitResult
from core.model.catalog import key_numbers, model_mtime, sample_scans
from core.training import run_files as rf
from core.training.registry import history_for, list_models
from core.xai.results import XaiEvaluation
from ui import figures, presentation
from ui.reference import SPEC_RESULTS

EVALUATION = {
    "test": {"n": 10, "accuracy": 0.9, "loss": 0.3, "macro_f1": 0.85, "cohen_kappa": 0.8, "macro_auc": 0.97,
             "accuracy_ci95": [0.8, 0.95], "confusion_matrix": [[3, 1], [0, 6]],
             "per_class": {"glioma": {"precision": 1.0, "recall": 0.75, "specificity": 1.0, "f1": 0.857, "support": 4},
                           "notumor": {"precision": 0.857, "recall": 1.0, "specificity": 0.75, "f1": 0.923,
                                       "support": 6}},
             "roc": {"glioma": {"fpr": [0, 0, 1], "tpr": [0, 1, 1]}}},
    "test_leakage_free": {"n": 8, "accuracy": 0.875, "loss": 0.35, "macro_f1": 0.8, "cohen_kappa": float("nan"),
                          "macro_auc": 0.96},
}


CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _prediction(name: str, confidence: float) -> Assessment:
    rest = (1 - confidence) / 3
    probabilities = (confidence, rest, rest, rest)
    return Assessment(name, CLASSES, probabilities, probabilities)


def test_predictions_frame_words_the_state_of_each_assessment():
    refused = Assessment("c.jpg", CLASSES, (0.999, 0.0, 0.0, 0.001), (0.999, 0.0, 0.0, 0.001),
                         refusal="blank image", refusal_layer="image:blank")
    frame = presentation.predictions_frame([_prediction("a.jpg", 0.95), _prediction("b.jpg", 0.5), refused])
    assert list(frame["answer"]) == ["Glioma", "Glioma", "Not a usable scan: not classified"]
    assert list(frame["assessment"]) == ["Confident", "Low confidence", "Not classified (refused by the input gate)"]
    assert frame.loc[1, "p(No tumour)"] == pytest.approx(0.5 / 3, abs=1e-4)
    assert frame.loc[2, ["confidence", "p(Glioma)", "p(No tumour)"]].isna().all()  # a refused row has no numbers
    assert "file,assessment,answer,confidence" in frame.to_csv(index=False)


def test_predictions_display_words_probabilities():
    frame = presentation.predictions_frame([_prediction("a.jpg", 0.99999), _prediction("b.jpg", 0.5)])
    shown = presentation.predictions_display(frame)
    assert list(shown["confidence"]) == [">99.9%", "50.0%"]
    assert shown.loc[0, "p(No tumour)"] == "<0.1%"
    assert frame.loc[0, "confidence"] == pytest.approx(0.99999)


def test_headline_frame_has_cis_and_the_specification():
    frame = presentation.headline_frame(EvaluationRecord.from_json(EVALUATION))
    assert list(frame.columns) == ["Test, all (n=10)", "Test, older leakage-free (n=8)", "Specification"]
    accuracy, kappa, f1 = (presentation.HEADLINE_LABELS[k] for k in ("accuracy", "cohen_kappa", "macro_f1"))
    assert accuracy == "Share of scans classified correctly (accuracy)"  # plain words first, technical name second
    assert frame.loc[accuracy, "Test, all (n=10)"] == "0.9000 [0.800–0.950]"
    assert frame.loc[kappa, "Test, older leakage-free (n=8)"] == "–"
    assert frame.loc[f1, "Specification"] == f"{SPEC_RESULTS['macro_f1']:.4f}"


def test_per_class_frame_and_confusion_normalisation():
    frame = presentation.per_class_frame(SplitResult.from_json(EVALUATION["test"]))
    assert frame.loc["No tumour", "Other scans kept out of this class (specificity)"] == 0.75
    assert frame.loc["Glioma", "Scans (support)"] == 4
    assert frame.loc["Glioma", "Scans of this class found (sensitivity / recall)"] == 0.75
    np.testing.assert_allclose(presentation.confusion([[3, 1], [0, 0]], True), [[0.75, 0.25], [0, 0]])
    np.testing.assert_array_equal(presentation.confusion([[3, 1], [0, 6]], False), [[3, 1], [0, 6]])


def test_xai_frame_rows_and_spec_column():
    results = {"n_images": 5, "methods": {
        "scorecam": {"kind": "method", "label": "Score-CAM", "deletion_auc": {"mean": 0.2, "ci95": [0.1, 0.3]},
                     "insertion_auc": {"mean": 0.7}},
        "random": {"kind": "baseline", "label": "Random map", "deletion_auc": {"mean": 0.4}}}}
    frame = presentation.xai_frame(XaiEvaluation.from_json(results))
    deletion, sanity = presentation.XAI_COLUMNS["deletion_auc"], presentation.XAI_COLUMNS["sanity_rank_correlation"]
    assert deletion == "Confidence left as the top pixels are deleted (deletion AUC ↓)"
    assert frame.loc["Score-CAM", deletion] == "0.2000 [0.100–0.300]"
    assert frame.loc["Score-CAM", sanity] == "–"
    assert frame.loc["Random map", "Kind"] == "baseline"
    assert frame.loc["Random map", presentation.XAI_SPEC_COLUMN] == "–"
    assert frame.loc["Score-CAM", presentation.XAI_SPEC_COLUMN].startswith("0.4039")


def test_format_seconds_and_key_numbers_text():
    assert presentation.format_seconds(12.4) == "12 s"
    assert presentation.format_seconds(200) == "3 min 20 s"
    assert presentation.format_seconds(7500) == "2 h 05 min"
    assert presentation.format_seconds(None) == "–"
    assert presentation.key_numbers_text({"backbone": "B0", "input": "128 px", "test accuracy": 0.9}) == \
        "B0 · 128 px · test accuracy 0.9"


def test_registry_lists_default_model_and_finished_runs(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSCAN_MODEL", str(tiny_model_dir))
    for name in ("run1", "unevaluated", "running", "empty-model"):
        shutil.copytree(tiny_model_dir, tmp_path / name / rf.MODEL_SUBDIR)
        rf.write_json(tmp_path / name / rf.STATUS_FILE, {"state": "running" if name == "running" else "finished"})
    for name in ("run1", "running", "empty-model"):
        card = load_card(tmp_path / name / rf.MODEL_SUBDIR)
        card.evaluation = EVALUATION
        card.save(tmp_path / name / rf.MODEL_SUBDIR)
    (tmp_path / "empty-model" / rf.MODEL_SUBDIR / "model.keras").write_bytes(b"")
    (tmp_path / "unfinished").mkdir()
    entries = list_models(tmp_path)
    assert [e.source for e in entries] == ["BRAINSCAN_MODEL", "run run1"], "only finished, complete runs"
    assert entries[1].card.name == "tiny-test-model"
    assert entries[0].key.endswith(f"@{model_mtime(tiny_model_dir):.0f}")
    monkeypatch.setenv("BRAINSCAN_MODEL", str(tmp_path / "missing"))
    assert [e.source for e in list_models(None)] == []


def test_key_numbers_and_history(tiny_model_dir, tmp_path):
    card = load_card(tiny_model_dir)
    card.evaluation = EVALUATION
    numbers = key_numbers(card)
    assert numbers["test accuracy"] == 0.9 and numbers["leakage-free macro-F1"] == 0.8
    assert numbers["input"] == "32 px"
    model_dir = tmp_path / rf.MODEL_SUBDIR
    model_dir.mkdir()
    assert history_for(model_dir) == []
    rf.write_json(tmp_path / rf.HISTORY_FILE, [{"global_epoch": 1}])
    assert history_for(model_dir) == [{"global_epoch": 1}]


def test_sample_scans_one_per_class():
    names = [p.name for p in sample_scans()]
    assert len(names) == 4
    assert sorted(n[3:5] for n in names) == ["gl", "me", "no", "pi"]


def test_figures_carry_the_numbers():
    bars = figures.probability_bars({"glioma": 0.7, "notumor": 0.3}, "glioma")
    assert list(bars.data[0].y) == ["No tumour", "Glioma"]
    assert list(bars.data[0].text) == ["30.0%", "70.0%"]
    heat = figures.confusion_heatmap([[3, 1], [0, 6]], ["glioma", "notumor"], True, "t")
    np.testing.assert_allclose(heat.data[0].z, [[0.75, 0.25], [0, 1]])
    roc = figures.roc_curves(EVALUATION["test"]["roc"])
    assert "AUC 1.000" in roc.data[1].name
    history = [{"phase": "head", "global_epoch": 1, "loss": 1.0, "val_loss": 1.1, "accuracy": 0.5, "val_accuracy": 0.4},
               {"phase": "head", "global_epoch": 2, "loss": 0.8, "val_loss": 0.9, "accuracy": 0.6, "val_accuracy": 0.5},
               {"phase": "finetune", "global_epoch": 3, "loss": 0.5, "val_loss": 0.7, "accuracy": 0.8,
                "val_accuracy": 0.7}]
    assert figures.phase_boundaries(history) == [(2.5, "finetune")]
    curves = figures.training_curves(history)
    assert len(curves.data) == 4 and list(curves.data[1].y) == [1.1, 0.9, 0.7]
    xai = figures.xai_curves({"Score-CAM": ([0, 0.5, 1], [0.9, 0.3, 0.1])}, "Deletion", "fraction")
    assert list(xai.data[0].y) == [0.9, 0.3, 0.1]


def test_probability_wording_never_claims_certainty():
    assert presentation.format_probability(0.99996) == ">99.9%"
    assert presentation.format_probability(0.0001) == "<0.1%"
    assert presentation.format_probability(0.8734) == "87.3%"


def test_legends_match_overlay_kinds():
    from core.xai.explainers.base import Explanation

    def make(signed, extras=None):
        return Explanation("m", np.zeros((4, 4), np.float32), 0, {}, 0.1, signed, "", extras or {})

    from core.xai import overlays

    rng = np.random.default_rng(0)
    scan = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    heat = make(False)
    heat.map = rng.random((4, 4)).astype(np.float32)
    signed = make(True)
    signed.map = rng.normal(size=(4, 4)).astype(np.float32)
    segments = np.repeat(np.arange(2), 8).reshape(4, 4)
    regions = make(False, {"segments": segments, "signed_map": np.where(segments == 0, -1.0, 1.0)})
    cases = {"heatmap": (heat, overlays.heatmap_overlay(scan, heat.map, 0.5)),
             "signed": (signed, overlays.signed_overlay(scan, signed.map, 0.5, overlays.SIGNED_DISPLAY["smooth_sigma"],
                                                        overlays.SIGNED_DISPLAY["clip_percentile"], False)),
             "regions": (regions, overlays.region_overlay(scan, regions.extras["signed_map"], 0.5, segments))}
    for kind, (explanation, expected) in cases.items():
        assert overlays.overlay_kind(explanation) == kind
        assert kind in presentation.LEGENDS
        np.testing.assert_array_equal(overlays.overlay_for(explanation, scan, 0.5), expected)
    html = presentation.legend_html("signed", "Glioma")
    assert "against Glioma" in html and "for Glioma" in html and "rgb(220,30,30)" in html
    assert "region against Glioma" in presentation.legend_html("regions", "Glioma")


def test_fit_for_display_only_shrinks():
    big = np.zeros((1024, 512, 3), np.uint8)
    assert presentation.fit_for_display(big, 512).shape == (512, 256, 3)
    small = np.zeros((100, 80, 3), np.uint8)
    assert presentation.fit_for_display(small, 512) is small


def test_scan_metrics_and_comparison_frames(tiny_model_dir):
    from core.xai.metrics import METRICS
    from core.xai.metrics.base import MetricResult

    results = {"Score-CAM": {"deletion_auc": MetricResult(0.123456, None, False),
                             "insertion_auc": MetricResult(0.7, None, True)}}
    frame = presentation.scan_metrics_frame(results, METRICS)
    assert frame.loc["Score-CAM", "Deletion AUC (lower is better)"] == "0.1235"
    assert frame.loc["Score-CAM", "Insertion AUC (higher is better)"] == "0.7000"
    saturated = MetricResult(0.99, None, True)
    saturated.saturated = True
    frame = presentation.scan_metrics_frame({"LIME": {"insertion_auc": saturated}}, METRICS)
    assert frame.loc["LIME", "Insertion AUC (higher is better)"] == "saturated"
    card = load_card(tiny_model_dir)
    card.evaluation = EVALUATION
    other = load_card(tiny_model_dir)
    table = presentation.comparison_frame({"A": card, "B": other})
    row = f"{presentation.HEADLINE_LABELS['accuracy']} — Test, all"
    assert table.loc[row, "A"] == "0.9000 [0.800–0.950]"
    assert table.loc[row, "B"] == "–"


def test_sample_class_from_file_name():
    from core.model.catalog import sample_class

    assert sample_class(Path("Te-gl_0014.jpg")) == "glioma"
    assert sample_class(Path("Te-no_0229.jpg")) == "notumor"
    assert sample_class(Path("scan.png")) is None


def test_training_curves_stacked_for_the_sidebar():
    history = [{"phase": "scratch", "global_epoch": i, "loss": 1.0 / i, "val_loss": 1.1 / i, "accuracy": 0.1 * i,
                "val_accuracy": 0.09 * i} for i in (1, 2, 3)]
    fig = figures.training_curves(history, stacked=True)
    assert fig.data[2].yaxis == "y2" and fig.data[2].xaxis == "x2"
    assert list(fig.data[3].y) == pytest.approx([0.09, 0.18, 0.27])


def test_feedback_needs_an_explicit_verdict_and_a_class_when_wrong():
    from ui.clinical import feedback_problem

    assert feedback_problem(None, None) == "Choose whether the model's answer is correct or wrong."
    assert feedback_problem("Wrong", None) == "Choose the correct class."
    assert feedback_problem("Wrong", "glioma") is None and feedback_problem("Correct", None) is None
