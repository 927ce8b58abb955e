"""Fit what lets a model folder know when not to answer (`python -m core calibrate`, and the end of training):
the input gate's learned score (chosen by measurement) and threshold, the temperature, and the conformal
calibration set. Everything is fitted on the training split (gate) and the validation split (threshold,
temperature, conformal), never on the test split or the external evaluation sets."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.metrics import roc_auc_score

from core.data.discovery import Sample, discover_for_model, load_samples, make_splits
from core.data.leakage import LeakageReport, check_leakage
from core.errors import CalibrationError
from core.evaluation.calibration import calibration_metrics, conformal_metrics
from core.evaluation.evaluate import card_protocol
from core.evaluation.negatives import build_negatives, shifted_scan
from core.io.images import preprocess
from core.model.card import ModelCard
from core.model.gate import check_pixels
from core.model.gate.scores import SCORES, describe, get_score
from core.model.inference import predict_with_features
from core.model.trust import DEFAULT_CONFIDENCE, Trust, TrustConfig, calibrated_proba, load_trust, save_trust

log = logging.getLogger("brainscan.trust")

FALSE_REFUSAL = 0.01     # the gate's threshold refuses this share of validation scans (clean and shifted)
FIT_PER_CLASS = 300      # training scans per class the gate score is fitted on (plus one shifted copy each)
NEGATIVES_PER_FAMILY = 250
MIN_TRAIN_PER_CLASS = 50       # below this a gate score is not worth fitting
MIN_VALIDATION_PER_CLASS = 20  # a 95% conformal quantile per class needs at least 19 calibration scans

Progress = Callable[[str, int, int], None] | None


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the validation NLL of softmax(logits / T) (Guo et al. 2017)."""
    labels = np.asarray(labels)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(labels)), labels].mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def _sample(samples: list[Sample], per_class: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for label in sorted({s.label for s in samples}):
        mine = [s for s in samples if s.label == label]
        out.extend(mine[i] for i in sorted(rng.permutation(len(mine))[:per_class]))
    return out


def _features(model: Any, images: np.ndarray, stage: str, progress: Progress) -> tuple[np.ndarray, dict]:
    step = 256
    probas, parts = [], []
    for start in range(0, len(images), step):
        p, f = predict_with_features(model, images[start:start + step].astype(np.float32))
        probas.append(p)
        parts.append(f)
        if progress:
            progress(stage, min(start + step, len(images)), len(images))
    return np.concatenate(probas), {k: np.concatenate([f[k] for f in parts]) for k in parts[0]}


def _subset(features: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in features.items()}


def _join(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def select_gate_score(train: dict, train_labels: np.ndarray, negatives: dict, families: np.ndarray,
                      validation: dict, candidates: list[str], false_refusal: float = FALSE_REFUSAL,
                      seed: int = 0) -> tuple[str, dict[str, Any]]:
    """Measure every candidate score on negatives it was not fitted on and choose the best.

    Each score is fitted on the training features (the outlier-exposure head also on the negatives of every
    family but the one measured: leave-one-family-out), its threshold set to refuse `false_refusal` of the
    validation scans (clean and shifted), and measured per negative family: refusal rate at that threshold and
    AUROC against the clean validation scans. Chosen: the highest mean refusal rate over families (ties: AUROC).
    """
    report: dict[str, Any] = {}
    n_val_clean = validation["n_clean"]
    for name in candidates:
        score = get_score(name)
        started = time.perf_counter()
        per_family = {}
        fitted = None if score.uses_negatives else score.fit(train, train_labels, seed=seed)
        for family in sorted(set(families)):
            held = families == family
            params = fitted or score.fit(train, train_labels, _subset(negatives, ~held), seed=seed)
            val_scores = score.score(validation["features"], params)
            threshold = float(np.quantile(val_scores, 1 - false_refusal))
            neg_scores = score.score(_subset(negatives, held), params)
            y = np.r_[np.zeros(n_val_clean), np.ones(len(neg_scores))]
            per_family[family] = {
                "refused": round(float((neg_scores > threshold).mean()), 4),
                "auroc": round(float(roc_auc_score(y, np.r_[val_scores[:n_val_clean], neg_scores])), 4),
                "shifted_validation_refused": round(float((val_scores[n_val_clean:] > threshold).mean()), 4)}
        report[name] = {**describe(name), "per_family": per_family,
                        "mean_refused": round(float(np.mean([f["refused"] for f in per_family.values()])), 4),
                        "min_refused": round(float(np.min([f["refused"] for f in per_family.values()])), 4),
                        "mean_auroc": round(float(np.mean([f["auroc"] for f in per_family.values()])), 4),
                        "seconds": round(time.perf_counter() - started, 1)}
        log.info("gate score %s: mean refusal %.3f, mean AUROC %.4f", name, report[name]["mean_refused"],
                 report[name]["mean_auroc"])
    best = max(candidates, key=lambda n: (report[n]["mean_refused"], report[n]["mean_auroc"]))
    return best, report


def _save_cache(path: str | Path | None, f_train: dict, f_val: dict, val_proba: np.ndarray, f_neg: dict) -> None:
    if path:
        arrays = {f"{part}:{k}": v for part, f in (("train", f_train), ("val", f_val), ("neg", f_neg)) for k, v in f.items()}
        np.savez(path, val_proba=val_proba, **arrays)


def _load_cache(path: str | Path | None) -> tuple[dict, dict, np.ndarray, dict] | None:
    """Features saved by an earlier fit of the same model and data (for re-running the selection quickly)."""
    if not path or not Path(path).is_file():
        return None
    with np.load(path) as arrays:
        parts: dict[str, dict[str, np.ndarray]] = {"train": {}, "val": {}, "neg": {}}
        for key in arrays.files:
            if ":" in key:
                part, name = key.split(":", 1)
                parts[part][name] = arrays[key]
        return parts["train"], parts["val"], arrays["val_proba"], parts["neg"]


@dataclass(frozen=True)
class _FitImages:
    """The scans a fit uses: sampled training scans and the validation split, each with one shifted copy, and the
    self-built negatives the rule layer lets through (with their families and the rule refusals per family)."""

    train: Any
    val: Any
    shifted_train: np.ndarray
    shifted_val: np.ndarray
    negatives: list[np.ndarray]
    families: np.ndarray
    rule_refused: dict[str, int]


def _fit_splits(card: ModelCard, data: str | Path, protocol: str, val_fraction: float, seed: int,
                leakage: LeakageReport | None) -> dict[str, list[Sample]]:
    """The card's splits of `data`; a CalibrationError when a class has too few training or validation scans."""
    index = discover_for_model(data, card.class_names)
    groups = (leakage or check_leakage(index)).groups if protocol == "grouped" else None
    splits = make_splits(index, protocol, val_fraction, seed, groups)
    for part, minimum in (("train", MIN_TRAIN_PER_CLASS), ("validation", MIN_VALIDATION_PER_CLASS)):
        counts = [sum(s.label == k for s in splits[part]) for k in range(len(card.class_names))]
        if min(counts) < minimum:
            raise CalibrationError(f"too few {part} scans to fit the gate and calibration: {counts} per class "
                                   f"(at least {minimum} each)")
    return splits


def _gate_negatives(images: np.ndarray, card: ModelCard, seed: int, per_family: int
                    ) -> tuple[list[np.ndarray], np.ndarray, dict[str, int]]:
    """(negatives the rule layer passes, preprocessed; their families; rule refusals per family)."""
    negatives = build_negatives(images, seed=seed, per_family=per_family)
    kept, families, rule_refused = [], [], {}
    for image, family in zip(negatives.images, negatives.families):
        if check_pixels(image) is not None:  # the rule layer refuses it before any learned score is asked
            rule_refused[family] = rule_refused.get(family, 0) + 1
            continue
        kept.append(preprocess(image, card.image_size, card.crop).astype(np.uint8))
        families.append(family)
    return kept, np.asarray(families), rule_refused


def _fit_images(card: ModelCard, splits: dict[str, list[Sample]], seed: int, per_class: int, per_family: int,
                progress: Progress) -> _FitImages:
    """Load the scans of a fit and build their shifted copies and the negatives (seeded)."""
    rng = np.random.default_rng(seed)
    fit_samples = _sample(splits["train"], per_class, seed)
    train = load_samples(fit_samples, card.image_size,
                         progress=(lambda i, n: progress("load training", i, n)) if progress else None, crop=card.crop)
    val = load_samples(splits["validation"], card.image_size,
                       progress=(lambda i, n: progress("load validation", i, n)) if progress else None, crop=card.crop)
    shifted_train = np.stack([shifted_scan(s, rng) for s in train.images])
    shifted_val = np.stack([shifted_scan(s, rng) for s in val.images])
    negatives, families, rule_refused = _gate_negatives(train.images, card, seed, per_family)
    return _FitImages(train, val, shifted_train, shifted_val, negatives, families, rule_refused)


def _fit_features(model: Any, images: _FitImages, cache: str | Path | None, progress: Progress
                  ) -> tuple[dict, dict, np.ndarray, dict]:
    """(training features, validation features, validation probabilities, negative features), clean scans first
    then shifted copies; read from / written to `cache` when given."""
    cached = _load_cache(cache)
    if cached:
        return cached
    _, f_train = _features(model, np.concatenate([images.train.images, images.shifted_train]), "features: training",
                           progress)
    val_proba, f_val = _features(model, np.concatenate([images.val.images, images.shifted_val]),
                                 "features: validation", progress)
    _, f_neg = _features(model, np.stack(images.negatives), "features: negatives", progress)
    _save_cache(cache, f_train, f_val, val_proba, f_neg)
    return f_train, f_val, val_proba, f_neg


def _fitted(images: _FitImages, data: str | Path, protocol: str, seed: int, val_fraction: float,
            false_refusal: float, command: str) -> dict[str, Any]:
    """The `fitted` provenance of trust.json (`seconds` is filled in once the fit is done)."""
    families = images.families
    return {"data": str(data), "protocol": protocol, "seed": seed, "val_fraction": val_fraction,
            "training_scans": int(len(images.train.images)), "shifted_training_scans": int(len(images.shifted_train)),
            "validation_scans": int(len(images.val.images)), "shifted_validation_scans": int(len(images.shifted_val)),
            "negatives": {f: int((families == f).sum()) for f in sorted(set(families.tolist()))},
            "negatives_refused_by_rules": images.rule_refused, "false_refusal_target": false_refusal,
            "command": command, "seconds": None, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def fit_trust(model: Any, card: ModelCard, data: str | Path, model_dir: str | Path, protocol: str | None = None,
              seed: int = 42, val_fraction: float = 0.1, confidence: float = DEFAULT_CONFIDENCE,
              per_class: int = FIT_PER_CLASS, per_family: int = NEGATIVES_PER_FAMILY,
              candidates: list[str] | None = None, false_refusal: float = FALSE_REFUSAL,
              command: str = "", progress: Progress = None, features_cache: str | Path | None = None,
              leakage: LeakageReport | None = None) -> Trust:
    """Fit the gate (score chosen by measurement), temperature and conformal sets; write trust.json/.npz.
    `leakage`: the data's leakage report when the caller has it (a training run passes its own along)."""
    started = time.perf_counter()
    protocol = protocol or card_protocol(card)
    splits = _fit_splits(card, data, protocol, val_fraction, seed, leakage)
    images = _fit_images(card, splits, seed, per_class, per_family, progress)
    train_labels = np.r_[images.train.labels, images.train.labels]
    f_train, f_val, val_proba, f_neg = _fit_features(model, images, features_cache, progress)
    validation = {"features": f_val, "n_clean": len(images.val.images)}
    best, selection = select_gate_score(f_train, train_labels, f_neg, images.families, validation,
                                        list(candidates or SCORES), false_refusal, seed)
    score = get_score(best)
    params = score.fit(f_train, train_labels, f_neg if score.uses_negatives else None, seed=seed)
    threshold = float(np.quantile(score.score(f_val, params), 1 - false_refusal))

    n, labels = len(images.val.images), images.val.labels
    logits = f_val["logits"][:n]
    temperature = fit_temperature(logits, labels)
    before, after = val_proba[:n], calibrated_proba(logits, temperature)
    config = TrustConfig(
        temperature=temperature, gate_score=best, gate_threshold=threshold, confidence=confidence,
        class_names=list(card.class_names),
        fitted=_fitted(images, data, protocol, seed, val_fraction, false_refusal, command),
        report={"gate_selection": selection,
                "validation_calibration": {"before": calibration_metrics(before, labels, card.class_names, seed),
                                           "after": calibration_metrics(after, labels, card.class_names, seed)}})
    save_trust(model_dir, config, params, after, labels)
    trust = load_trust(model_dir, card.class_names)
    config.report["validation_conformal"] = conformal_metrics(trust.sets(after), after, labels, card.class_names)
    config.fitted["seconds"] = round(time.perf_counter() - started, 1)
    save_trust(model_dir, config, params, after, labels)
    log.info("trust fitted in %.0f s: gate %s (threshold %.4g), temperature %.3f", config.fitted["seconds"], best,
             threshold, temperature)
    return load_trust(model_dir, card.class_names)
