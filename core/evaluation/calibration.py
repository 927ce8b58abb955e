"""Calibration, conformal-set and gate metrics: ECE (15 bins), NLL, Brier, reliability bins, coverage and set
size per class, selective accuracy (risk-coverage), AUROC and FPR at 95% TPR. Every figure has a 95% interval
(Wilson for proportions, seeded bootstrap otherwise)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from core.stats import bootstrap, percentile_interval, wilson

BINS = 15
BOOTSTRAP = 300


def wilson_ci95(successes: int, n: int) -> list[float] | None:
    """The Wilson 95% interval of a proportion as saved in the documents, [low, high] to 4 decimals (None when
    n = 0)."""
    interval = wilson(successes, n)
    return None if interval is None else interval.to_list(4)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error with equal-width bins: sum over bins of |accuracy - confidence| x share."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Per bin: its range, mean confidence, accuracy and count (the reliability diagram)."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append({"lo": round(float(edges[b]), 4), "hi": round(float(edges[b + 1]), 4),
                         "confidence": round(float(confidence[mask].mean()), 4),
                         "accuracy": round(float(correct[mask].mean()), 4), "n": int(mask.sum())})
    return rows


def _scores(proba: np.ndarray, labels: np.ndarray, idx: np.ndarray | None = None) -> dict[str, float]:
    p, y = (proba, labels) if idx is None else (proba[idx], labels[idx])
    onehot = np.eye(proba.shape[1])[y]
    return {"ece": ece(p.max(axis=1), (p.argmax(axis=1) == y).astype(float)),
            "nll": float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean()),
            "brier": float(((p - onehot) ** 2).sum(axis=1).mean())}


def calibration_metrics(proba: np.ndarray, labels: np.ndarray, class_names: list[str], seed: int = 0) -> dict[str, Any]:
    """Overall ECE (top label), NLL, Brier with bootstrap intervals; per class the one-vs-rest ECE and Brier and
    the NLL of that class's scans; the reliability bins."""
    labels = np.asarray(labels)
    out: dict[str, Any] = {"n": int(len(labels))}
    if len(labels) < 2:
        return out
    overall = _scores(proba, labels)
    boots = bootstrap(lambda idx: _scores(proba, labels, idx), len(labels), BOOTSTRAP, seed)
    for key, value in overall.items():
        out[key] = round(value, 5)
        out[f"{key}_ci95"] = percentile_interval([b[key] for b in boots]).to_list(5)
    out["per_class"] = {}
    for k, name in enumerate(class_names):
        p_k, is_k = proba[:, k], (labels == k).astype(float)
        mine = labels == k
        out["per_class"][name] = {
            "n": int(mine.sum()),
            "ece": round(ece(p_k, is_k), 5),
            "brier": round(float(((p_k - is_k) ** 2).mean()), 5),
            "nll": round(float(-np.log(np.clip(p_k[mine], 1e-12, 1)).mean()), 5) if mine.any() else None}
    out["reliability"] = reliability(proba.max(axis=1), (proba.argmax(axis=1) == labels).astype(float))
    return out


def conformal_metrics(sets: np.ndarray, proba: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Empirical coverage and mean set size per class and overall; how many scans get a single class and how
    often that single class is right; empty sets."""
    labels = np.asarray(labels)
    n = len(labels)
    covered = sets[np.arange(n), labels]
    size = sets.sum(axis=1)
    single = size == 1
    right_single = single & covered
    out: dict[str, Any] = {
        "n": n, "coverage": round(float(covered.mean()), 4) if n else None, "coverage_ci95": wilson_ci95(covered.sum(), n),
        "mean_set_size": round(float(size.mean()), 4) if n else None,
        "single_share": round(float(single.mean()), 4) if n else None, "single_share_ci95": wilson_ci95(single.sum(), n),
        "single_accuracy": round(float(right_single.sum() / max(single.sum(), 1)), 4),
        "single_accuracy_ci95": wilson_ci95(right_single.sum(), single.sum()),
        "empty_share": round(float((size == 0).mean()), 4) if n else None, "per_class": {}}
    for k, name in enumerate(class_names):
        mine = labels == k
        m = int(mine.sum())
        out["per_class"][name] = {
            "n": m, "coverage": round(float(covered[mine].mean()), 4) if m else None,
            "coverage_ci95": wilson_ci95(covered[mine].sum(), m),
            "mean_set_size": round(float(size[mine].mean()), 4) if m else None,
            "single_share": round(float(single[mine].mean()), 4) if m else None}
    return out


def risk_coverage(proba: np.ndarray, labels: np.ndarray, sets_at: Callable[[float], np.ndarray]) -> dict[str, Any]:
    """Two selective-answer curves: answering when the conformal set (at a range of confidence levels) has one
    class, and answering when the calibrated top probability passes a threshold. Each point: share answered and
    accuracy of the answers."""
    labels = np.asarray(labels)
    correct = proba.argmax(axis=1) == labels
    conformal = []
    for level in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99):
        sets = sets_at(level)
        single = sets.sum(axis=1) == 1
        right = single & sets[np.arange(len(labels)), labels]
        conformal.append({"confidence": level, "answered": round(float(single.mean()), 4),
                          "accuracy": round(float(right.sum() / max(single.sum(), 1)), 4)})
    top = proba.max(axis=1)
    threshold_curve = []
    for t in np.r_[0.0, np.quantile(top, np.linspace(0.05, 0.95, 19))]:
        answered = top >= t
        threshold_curve.append({"threshold": round(float(t), 4), "answered": round(float(answered.mean()), 4),
                                "accuracy": round(float(correct[answered].mean()), 4) if answered.any() else None})
    return {"conformal": conformal, "top_probability": threshold_curve}


def ood_metrics(id_scores: np.ndarray, ood_scores: np.ndarray, id_refused: np.ndarray, ood_refused: np.ndarray,
                seed: int = 0) -> dict[str, Any]:
    """The gate against one set: AUROC (OOD = positive; a rule refusal counts as the highest score) with a
    bootstrap interval, FPR at 95% TPR (share of the set still accepted when 95% of the in-distribution scans
    are), and the refusal rate at the gate's own threshold."""
    id_s = np.where(id_refused & ~np.isfinite(id_scores), np.inf, id_scores)
    ood_s = np.where(ood_refused & ~np.isfinite(ood_scores), np.inf, ood_scores)
    top = max(np.max(np.r_[id_s[np.isfinite(id_s)], ood_s[np.isfinite(ood_s)], 0.0]), 0.0) + 1.0
    id_s, ood_s = np.where(np.isfinite(id_s), id_s, top), np.where(np.isfinite(ood_s), ood_s, top)
    y = np.r_[np.zeros(len(id_s)), np.ones(len(ood_s))]
    s = np.r_[id_s, ood_s]
    out: dict[str, Any] = {"n": int(len(ood_s)), "refused": round(float(ood_refused.mean()), 4),
                           "refused_ci95": wilson_ci95(ood_refused.sum(), len(ood_refused))}
    if len(ood_s) and len(id_s):
        out["auroc"] = round(float(roc_auc_score(y, s)), 4)
        boots = bootstrap(lambda a, b: roc_auc_score(y, np.r_[id_s[a], ood_s[b]]), (len(id_s), len(ood_s)),
                          BOOTSTRAP, seed)
        out["auroc_ci95"] = percentile_interval(boots).to_list(4)
        threshold = np.quantile(id_s, 0.95)
        out["fpr_at_95tpr"] = round(float((ood_s <= threshold).mean()), 4)
        fpr, tpr, _ = roc_curve(y, s)
        out["roc"] = [[round(float(a), 4), round(float(b), 4)] for a, b in zip(fpr[:: max(len(fpr) // 50, 1)],
                                                                               tpr[:: max(len(tpr) // 50, 1)])]
    return out
