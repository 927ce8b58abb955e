"""Evaluate a model on a dataset: validation, full test split and the leakage-free test subset."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core.data.discovery import discover_for_model, limit_per_class, load_samples, make_splits
from core.data.leakage import LeakageReport, check_leakage
from core.evaluation.metrics import compute_metrics
from core.evaluation.trust_eval import trust_report
from core.model.card import ModelCard
from core.model.engine import engine_name
from core.model.inference import predict_proba

log = logging.getLogger("brainscan.eval")


def card_protocol(card: ModelCard) -> str:
    """The split protocol a model was trained with (its card), so that its validation split is reproduced."""
    return str(card.training.get("config", {}).get("protocol") or card.evaluation.get("protocol") or "grouped")


def evaluate_loaded_model(model: Any, card: ModelCard, data: str, protocol: str | None = None, seed: int = 42,
                          val_fraction: float = 0.1, per_class: int = 0,
                          progress: Callable[[str, int, int], None] | None = None, trust: Any = None,
                          external: str | None = None, leakage: LeakageReport | None = None) -> dict[str, Any]:
    """Metrics on validation, the full test split, the strict unseen test subset (no source slice in Training)
    and the older leakage-free subset, with the audit summary and skipped files; with a fitted `trust`
    (core.model.trust) also calibration, conformal sets and the gate (`results["trust"]`). `protocol` None: the
    one recorded in the card. `leakage`: the data's leakage report when the caller has it (a training run checks
    once and passes it along), else it is computed here."""
    protocol = protocol or card_protocol(card)
    index = discover_for_model(data, card.class_names)
    report = leakage or check_leakage(index, progress=(lambda i, n: progress("audit", i, n)) if progress else None)
    splits = make_splits(index, protocol, val_fraction, seed, report.groups)
    splits = {k: limit_per_class(v, per_class) for k, v in splits.items()}
    leaky = report.leaky
    results: dict[str, Any] = {"protocol": protocol, "seed": seed, "audit": report.summary(),
                               "engine": engine_name(model)}
    for part in ("validation", "test"):
        loaded = load_samples(splits[part], card.image_size, crop=card.crop)
        proba = predict_proba(model, loaded.images,
                              progress=(lambda i, n, p=part: progress(p, i, n)) if progress else None)
        results[part] = compute_metrics(loaded.labels, proba, card.class_names, seed=seed)
        results[part]["skipped"] = loaded.skipped
        if part == "test":
            keep = [i for i, s in enumerate(loaded.samples) if s.relpath not in leaky]
            results["test_leakage_free"] = compute_metrics(loaded.labels[keep], proba[keep], card.class_names, seed=seed)
            unseen = [i for i, s in enumerate(loaded.samples) if s.relpath in report.unseen]
            results["test_unseen"] = compute_metrics(loaded.labels[unseen], proba[unseen], card.class_names, seed=seed)
        log.info("%s: accuracy %.4f macro-F1 %.4f", part, results[part]["accuracy"], results[part]["macro_f1"])
    if trust is not None:
        leakage_free = {s.relpath for s in splits["test"] if s.relpath not in leaky}
        subsets = {"test_leakage_free": leakage_free, "test_unseen": set(report.unseen)}
        results["trust"] = trust_report(model, card, trust, splits["test"], subsets, external, seed, progress)
    return results
