"""How well a model folder knows when not to answer, measured on the test split (and, optionally, on folders
in the external-eval layout): calibration before/after, conformal coverage and set sizes, selective accuracy,
the gate's false refusals and its AUROC / FPR at 95% TPR per external set.

Every scan goes through `core.model.inference.classify`, the exact path of the CLI and the app."""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.data.discovery import Sample
from core.errors import BrainScanError, DataLayoutError
from core.evaluation.calibration import (
    calibration_metrics,
    conformal_metrics,
    ood_metrics,
    risk_coverage,
    wilson_ci95,
)
from core.model.assessment import Assessment
from core.model.card import ModelCard
from core.model.inference import classify
from core.model.trust import Trust

Progress = Callable[[str, int, int], None] | None
LABELS_FILE = "labels.csv"


def _run(model: Any, card: ModelCard, trust: Trust, paths: list[Path], stage: str,
         progress: Progress) -> list[Assessment | None]:
    out: list[Assessment | None] = []
    for i, path in enumerate(paths):
        try:
            out.append(classify(model, card, path, str(path), trust=trust))
        except BrainScanError:
            out.append(None)  # unreadable: counted as skipped, not as a refusal
        if progress:
            progress(stage, i + 1, len(paths))
    return out


def _gate_arrays(predictions: list[Assessment | None]) -> tuple[np.ndarray, np.ndarray]:
    kept = [p for p in predictions if p is not None]
    scores = np.array([np.nan if p.ood_score is None else p.ood_score for p in kept], np.float64)
    return scores, np.array([p.refused for p in kept], bool)


def external_sets(folder: str | Path) -> dict[str, list[tuple[Path, str]]]:
    """{set name: [(file, label)]} from a folder with labels.csv (file,label,...) or whose subfolders have one."""
    folder = Path(folder).expanduser()
    roots = [folder] if (folder / LABELS_FILE).is_file() else sorted(
        p for p in folder.iterdir() if p.is_dir() and (p / LABELS_FILE).is_file()) if folder.is_dir() else []
    if not roots:
        raise DataLayoutError(f"{folder} holds no {LABELS_FILE} (columns file,label,...), neither does any subfolder.")
    sets = {}
    for root in roots:
        with open(root / LABELS_FILE, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and not {"file", "label"} <= set(rows[0]):
            raise DataLayoutError(f"{root / LABELS_FILE} must have the columns file,label (has {list(rows[0])}).")
        sets[root.name] = [(root / r["file"], r["label"]) for r in rows]
    return sets


def trust_report(model: Any, card: ModelCard, trust: Trust, test: list[Sample],
                 subsets: dict[str, set[str]] | None = None, external: str | Path | None = None, seed: int = 42,
                 progress: Progress = None) -> dict[str, Any]:
    """Calibration, conformal sets, selective accuracy and the gate on the test split (and its named subsets:
    relpaths to keep), plus the gate per external set."""
    classes = list(card.class_names)
    predictions = _run(model, card, trust, [s.path for s in test], "trust: test", progress)
    # every scan the network saw, refused ones included (their values are kept for measuring, never shown)
    rows = [(s, p) for s, p in zip(test, predictions) if p is not None and p.calibrated]
    labels = np.array([s.label for s, _ in rows])
    before = np.array([p.raw for _, p in rows], np.float64).reshape(len(rows), len(classes))
    after = np.array([p.calibrated for _, p in rows], np.float64).reshape(len(rows), len(classes))
    id_scores, id_refused = _gate_arrays(predictions)
    confidence = trust.config.confidence
    report: dict[str, Any] = {
        "gate_score": trust.config.gate_score, "gate_threshold": trust.config.gate_threshold,
        "temperature": trust.config.temperature, "confidence": confidence,
        "fitted": trust.config.fitted, "skipped": int(sum(p is None for p in predictions)),
        "test_false_refusal": {"n": int(len(id_refused)), "refused": int(id_refused.sum()),
                               "rate": round(float(id_refused.mean()), 4) if len(id_refused) else None,
                               "rate_ci95": wilson_ci95(id_refused.sum(), len(id_refused)),
                               "by_layer": _by_layer(predictions)},
    }
    parts = {"test": np.ones(len(rows), bool)}
    for name, keep in (subsets or {}).items():
        parts[name] = np.array([s.relpath in keep for s, _ in rows], bool)
    for name, mask in parts.items():
        if not mask.any():
            continue
        sets = trust.sets(after[mask])
        report[name] = {
            "calibration_before": calibration_metrics(before[mask], labels[mask], classes, seed),
            "calibration_after": calibration_metrics(after[mask], labels[mask], classes, seed),
            "conformal": conformal_metrics(sets, after[mask], labels[mask], classes)}
    report["risk_coverage"] = risk_coverage(after, labels, lambda level: trust.sets(after, level))
    if external:
        report["external"] = {}
        for set_name, files in external_sets(external).items():
            preds = _run(model, card, trust, [f for f, _ in files], f"trust: {set_name}", progress)
            scores, refused = _gate_arrays(preds)
            entry = ood_metrics(id_scores, scores, id_refused, refused, seed)
            entry["by_layer"] = _by_layer(preds)
            entry["labels"] = sorted({label for _, label in files})
            accepted = [p for p in preds if p is not None and not p.refused]
            entry["accepted_answers"] = {c: sum(p.predicted == c for p in accepted) for c in classes}
            entry["skipped"] = int(sum(p is None for p in preds))
            report["external"][set_name] = entry
    return report


def _by_layer(predictions: list[Assessment | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in predictions:
        if p is not None and p.refused:
            counts[p.refusal_layer or "?"] = counts.get(p.refusal_layer or "?", 0) + 1
    return counts
