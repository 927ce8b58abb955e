"""Metrics checked against values computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.metrics import bootstrap_ci, compute_metrics, specificity_per_class

CLASSES = ["a", "b", "c"]
Y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
PRED = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0, 2])


def _onehot_proba(pred: np.ndarray, confidence: float = 0.8) -> np.ndarray:
    proba = np.full((len(pred), 3), (1 - confidence) / 2)
    proba[np.arange(len(pred)), pred] = confidence
    return proba


def test_metrics_match_hand_computation():
    r = compute_metrics(Y, _onehot_proba(PRED), CLASSES, bootstrap_rounds=0)
    assert r["accuracy"] == pytest.approx(0.8)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 4]]
    # class a: TP 2, FP 1, FN 1 -> P = R = F1 = 2/3; TN = 6 -> specificity 6/7
    assert r["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["a"]["specificity"] == pytest.approx(6 / 7)
    # class b: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8
    assert r["per_class"]["b"]["f1"] == pytest.approx(0.8)
    # class c: TP 4, FP 0, FN 1 -> F1 8/9
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 8 / 9) / 3)
    # kappa: po 0.8, pe = (3*3 + 2*3 + 5*4) / 100 = 0.35
    assert r["cohen_kappa"] == pytest.approx((0.8 - 0.35) / 0.65)
    # log loss: 8 cases with p=0.8 on the truth, 2 with p=0.1
    assert r["loss"] == pytest.approx(-(8 * np.log(0.8) + 2 * np.log(0.1)) / 10)
    assert r["per_class"]["c"]["support"] == 5


def test_perfect_ranking_gives_auc_one_and_roc_points():
    proba = _onehot_proba(Y, 0.9)
    r = compute_metrics(Y, proba, CLASSES, bootstrap_rounds=0)
    assert r["macro_auc"] == pytest.approx(1.0) and r["accuracy"] == 1.0
    assert set(r["roc"]) == set(CLASSES) and r["roc"]["a"]["tpr"][-1] == 1.0


def test_specificity_of_identity_confusion_is_one():
    assert specificity_per_class(np.eye(4) * 5).tolist() == [1.0] * 4


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    score = lambda t, p: float(np.mean(t == p))  # noqa: E731
    first = bootstrap_ci(Y, PRED, score, rounds=300, seed=1)
    assert first == bootstrap_ci(Y, PRED, score, rounds=300, seed=1)
    assert first[0] <= 0.8 <= first[1] and first[0] < first[1]
    r = compute_metrics(Y, _onehot_proba(PRED), CLASSES, bootstrap_rounds=200)
    assert r["accuracy_ci95"][0] <= r["accuracy"] <= r["accuracy_ci95"][1]
    assert r["macro_f1_ci95"][0] <= r["macro_f1"] <= r["macro_f1_ci95"][1]


def test_empty_subset_gives_nan_not_a_crash():
    r = compute_metrics(np.array([], int), np.zeros((0, 3)), CLASSES)
    assert r["n"] == 0 and np.isnan(r["accuracy"]) and r["confusion_matrix"] == [[0] * 3] * 3


def test_counted_macro_f1_is_scikit_learns_on_every_kind_of_resample():
    """The bootstrap's macro F1 (one bincount) equals scikit-learn's f1_score(average="macro", zero_division=0),
    also when a class is missing from the truth, from the predictions, or from both."""
    from sklearn.metrics import f1_score

    from core.evaluation.metrics import macro_f1_counts

    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 4, n), rng.integers(0, 4, n)) for n in (1, 5, 40, 1311)]
    cases += [(np.array([0, 0, 1]), np.array([0, 1, 1])),            # classes 2 and 3 neither true nor predicted
              (np.array([0, 1, 2, 3]), np.array([0, 0, 0, 0])),      # three classes never predicted
              (np.array([3, 3, 3]), np.array([2, 1, 3]))]            # three classes never true
    for truth, predicted in cases:
        expected = f1_score(truth, predicted, labels=[0, 1, 2, 3], average="macro", zero_division=0)
        assert macro_f1_counts(truth, predicted, 4) == pytest.approx(expected, abs=1e-12)
