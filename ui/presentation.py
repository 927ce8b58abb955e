"""Tables and wording the app shows: predictions, the model card's metrics, the XAI comparison.

Pure functions from core results to pandas DataFrames and short strings, so the pages stay thin
and the numbers they show are unit-tested.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from core.model.assessment import Assessment
from core.model.assessment import percent as format_probability
from core.model.card import class_label
from core.model.card_records import AuditSummary, EvaluationRecord, SplitResult
from core.xai.metrics import LOCALISATION, METRICS
from core.xai.results import LocalisationRecord, MeanCI, XaiEvaluation
from ui.reference import SPEC_RESULTS, SPEC_XAI

# Every metric in plain words first, its technical name second (the metrics page is read by clinicians too).
HEADLINE_LABELS = {"accuracy": "Share of scans classified correctly (accuracy)",
                   "loss": "Penalty for confident mistakes (cross-entropy loss, lower is better)",
                   "macro_f1": "Cases found vs false alarms, averaged over classes (macro-F1)",
                   "cohen_kappa": "Agreement with the true class beyond chance (Cohen's kappa)",
                   "macro_auc": "How well the scores rank each class above the rest (macro AUC, one-vs-rest)"}
SPLIT_LABELS = {"test": "Test, all", "test_unseen": "Test, strict unseen",
                "test_leakage_free": "Test, older leakage-free", "validation": "Validation"}
TEST_SPLITS = ("test", "test_unseen", "test_leakage_free")
PER_CLASS_LABELS = {"precision": "Right when it names this class (precision)",
                    "recall": "Scans of this class found (sensitivity / recall)",
                    "specificity": "Other scans kept out of this class (specificity)",
                    "f1": "Balance of the two (F1)", "support": "Scans (support)"}


def _arrow(spec: Any) -> str:
    return "↑" if spec.higher_is_better else "↓"


# The XAI tables' columns come from the metric registries: each metric declares its plain words, technical name
# and direction. Sanity and time are not registry metrics (the evaluation measures them beside the maps).
XAI_COLUMNS = {**{name: f"{spec.plain} ({spec.term} {_arrow(spec)})" for name, spec in METRICS.items()},
               "sanity_rank_correlation": "Same map for a scrambled model (sanity rank correlation, near 0 is good)",
               "seconds_per_image": "Time per scan (seconds)"}
XAI_SPEC_COLUMN = "Specification: deletion / insertion / faithfulness"
LOCALISATION_COLUMNS = {name: f"{spec.plain} ({spec.term}) {_arrow(spec)}"
                        for name, spec in {**LOCALISATION, **METRICS}.items()}


def content_hash(data: bytes) -> str:
    """Short stable id of a file's bytes (cache key for its results)."""
    return hashlib.sha256(data).hexdigest()[:16]


def scan_label(position: int, data: bytes, name: str, show_name: bool = False) -> str:
    """How a scan is named on screen and in exports: 'Scan 2 (3fa2c1)' (upload position and a short content
    hash) by default, because file names often hold patient names; the file name only when asked for."""
    return name if show_name else f"Scan {position} ({content_hash(data)[:6]})"


def scan_labels(files: dict[str, bytes], show_names: bool = False, unread: Iterable[str] = ()) -> dict[str, str]:
    """{file name: label} for the scans of a session, numbered in upload order; files that could not be read
    (`unread`, no content to hash) follow as 'File 3 (not read)'."""
    labels = {name: scan_label(i, data, name, show_names) for i, (name, data) in enumerate(files.items(), 1)}
    for name in unread:
        if name not in labels:
            labels[name] = name if show_names else f"File {len(labels) + 1} (not read)"
    return labels


def predictions_frame(predictions: Iterable[Assessment], failures: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per file, from its Assessment only: the state and headline in words, then (for an answered scan)
    the calibrated probabilities, the prediction set and the gate; a refused scan has no class and no
    probabilities. Files that could not be read follow with their reason in `error` (only when there are some)."""
    rows = []
    for p in predictions:
        row = {"file": p.file, "assessment": p.state_text, "answer": p.headline,
               "confidence": None if p.confidence is None else round(p.confidence, 6)}
        row.update({f"p({class_label(c)})": (None if p.refused else round(p.probabilities[c], 6))
                    for c in p.class_names})
        row.update({"prediction set": p.set_text(), "refusal": p.refusal or "",
                    "ood score": None if p.ood_score is None else round(p.ood_score, 4),
                    "calibrated": p.calibrated_model})
        rows.append(row)
    for name, reason in (failures or {}).items():
        rows.append({"file": name, "assessment": "not read", "answer": "not classified", "error": reason})
    return pd.DataFrame(rows)


def results_title(classified: int, failed: int = 0) -> str:
    """'1 scan', '3 scans', '2 scans (1 file could not be read)'."""
    text = f"{classified} scan{'s' if classified != 1 else ''}"
    if failed:
        text += f" ({failed} file{'s' if failed != 1 else ''} could not be read)"
    return text


def predictions_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The predictions table as shown on screen: probabilities worded as percentages, blanks for none."""
    shown = frame.copy()
    for column in shown.columns:
        if column == "confidence" or column.startswith("p("):
            shown[column] = shown[column].map(lambda p: "" if pd.isna(p) else format_probability(p))
    return shown.astype(object).where(shown.notna(), "")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _with_ci(split: SplitResult | None, key: str) -> str:
    if split is None:
        return "–"
    text = _fmt(split.metrics.get(key))
    ci = split.intervals.get(key)
    return f"{text} [{_fmt(ci[0], 3)}–{_fmt(ci[1], 3)}]" if ci else text


def headline_frame(evaluation: EvaluationRecord) -> pd.DataFrame:
    """Rows: the five headline metrics (plain words, technical name second); columns: our splits (with 95% CIs)
    and the specification."""
    table = {}
    for split, label in SPLIT_LABELS.items():
        if split in evaluation.splits:
            n = evaluation.splits[split].n
            table[f"{label} (n={n})" if n else label] = [_with_ci(evaluation.splits[split], k)
                                                          for k in HEADLINE_LABELS]
    table["Specification"] = [_fmt(SPEC_RESULTS.get(k)) for k in HEADLINE_LABELS]
    return pd.DataFrame(table, index=list(HEADLINE_LABELS.values()))


def audit_text(audit: AuditSummary) -> str:
    """One sentence on the leakage audit of the test split, with the strict unseen count per class."""
    text = (f"Leakage audit of the test split: {audit.count('exact')} exact and {audit.count('near_only')} "
            f"near copies of training scans among {audit.count('test')}; {audit.count('leakage_free')} scans are "
            "leakage-free by the older criterion")
    if "unseen" in audit.total:
        per_class = ", ".join(f"{class_label(c)} {r['unseen'] if 'unseen' in r else 0}"
                              for c, r in audit.per_class.items())
        text += (f", and {audit.count('unseen')} are strictly unseen (no source slice in Training, mirrored copies "
                 f"included: {per_class})")
    return text + "."


def per_class_frame(split: SplitResult) -> pd.DataFrame:
    """Precision, recall (sensitivity), specificity, F1 and support per class, named in plain words first."""
    rows = {class_label(c): {label: v[key] for key, label in PER_CLASS_LABELS.items()}
            for c, v in split.per_class.items()}
    return pd.DataFrame.from_dict(rows, orient="index").round(4)


def comparison_frame(cards: dict[str, Any]) -> pd.DataFrame:
    """Headline metrics of several models (label -> ModelCard) side by side, per test split."""
    table: dict[str, list[str]] = {}
    index = [f"{HEADLINE_LABELS[k]} — {SPLIT_LABELS[s]}" for s in TEST_SPLITS for k in HEADLINE_LABELS]
    for label, card in cards.items():
        splits = card.evaluation_record.splits
        table[label] = [_with_ci(splits.get(s), k) for s in TEST_SPLITS for k in HEADLINE_LABELS]
    return pd.DataFrame(table, index=index)


def confusion(matrix: list[list[int]], normalised: bool) -> np.ndarray:
    """The confusion matrix as counts, or each row (true class) divided by its total."""
    counts = np.asarray(matrix, dtype=np.float64)
    if not normalised:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def _mean_ci(entry: MeanCI | None) -> str:
    saturated = (entry.saturated or 0) if entry is not None else 0
    note = f" · {saturated} saturated, left out" if saturated else ""
    if entry is None or entry.mean is None:
        return "saturated" if saturated else "–"
    if entry.low is None or entry.high is None:
        return _fmt(entry.mean) + note
    return f"{_fmt(entry.mean)} [{_fmt(entry.low, 3)}–{_fmt(entry.high, 3)}]{note}"


def xai_frame(results: XaiEvaluation) -> pd.DataFrame:
    """The XAI comparison: one row per method or baseline, metric means with 95% CIs, spec numbers."""
    rows = {}
    for name, entry in results.methods.items():
        values = {**entry.metrics, "sanity_rank_correlation": entry.sanity_rank_correlation,
                  "seconds_per_image": entry.seconds_per_image}
        row = {"Kind": entry.kind}
        row.update({label: _mean_ci(values.get(key)) for key, label in XAI_COLUMNS.items()})
        spec = SPEC_XAI.get(name, {})
        row[XAI_SPEC_COLUMN] = (
            " / ".join(_fmt(spec.get(k)) for k in ("deletion_auc", "insertion_auc", "faithfulness_correlation"))
            if spec else "–")
        rows[entry.label] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def key_numbers_text(numbers: dict[str, Any]) -> str:
    """'backbone · 128 px · test accuracy 0.95 ...' for the model picker caption."""
    return " · ".join(str(v) if k in ("backbone", "input") else f"{k} {v}" for k, v in numbers.items())


def format_seconds(seconds: float | None) -> str:
    """'2 h 05 min', '3 min 20 s', '12 s' or '–'."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


LEGENDS = {
    "heatmap": ("#00007F,#0000FF,#00FFFF,#7FFF7F,#FFFF00,#FF0000,#7F0000", "low relevance", "high relevance for {label}"),
    "signed": ("rgb(30,80,230),rgba(128,128,128,0.2),rgb(220,30,30)", "against {label}", "for {label}"),
    "regions": ("rgb(30,80,230),rgba(128,128,128,0.2),rgb(220,30,30)", "region against {label}",
                "region for {label}"),
}


def legend_html(kind: str, label: str) -> str:
    """A small colour bar with its end labels (naming the explained class), matching the overlay's colours."""
    gradient, left, right = LEGENDS[kind]
    left, right = left.format(label=label), right.format(label=label)
    middle = "<span>0</span>" if kind in ("signed", "regions") else ""
    return (f"<div style='height:10px;border-radius:3px;background:linear-gradient(to right,{gradient})'></div>"
            f"<div style='display:flex;justify-content:space-between;font-size:0.75rem;opacity:0.85'>"
            f"<span>{left}</span>{middle}<span>{right}</span></div>")


def fit_for_display(image: np.ndarray, max_side: int = 512) -> np.ndarray:
    """The scan shrunk (never enlarged) so its longest side is at most `max_side` pixels."""
    import cv2

    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def scan_metrics_frame(results: dict[str, dict[str, Any]], metrics: dict[str, Any]) -> pd.DataFrame:
    """Per-scan XAI metrics: one row per method, one column per metric (with its better direction)."""
    columns = {name: f"{spec.label} ({'higher' if spec.higher_is_better else 'lower'} is better)"
               for name, spec in metrics.items()}
    rows = {label: {columns[m]: ("saturated" if getattr(r, "saturated", False) else f"{float(r.value):.4f}")
                    for m, r in values.items() if m in columns}
            for label, values in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


LOCALISATION_SUBSETS = {"all": "all test tumour scans with masks", "unflagged": "without flagged masks",
                        "unseen": "strict unseen subset"}


def localisation_frame(results: LocalisationRecord, subset: str = "all") -> pd.DataFrame:
    """Localisation and ROAD per map (methods, then the floors) and class: mean [95% CI] of each metric the
    record holds, headed as its registry entry declares (a metric no longer registered: its saved label)."""
    if subset not in results.summary:
        return pd.DataFrame()
    block = results.summary[subset]
    labels = {**{m: m for m in results.methods}, **results.method_labels, **results.references}
    columns = {key: LOCALISATION_COLUMNS.get(key, f"{meta.label} {'↑' if meta.higher_is_better else '↓'}")
               for key, meta in results.metrics.items()}
    rows = []
    for name, entry in block.maps.items():
        for cls in ["all", *block.per_class_n]:
            row: dict[str, Any] = {"Map": labels.get(name, name), "Class": cls,
                                   "n": block.n if cls == "all" else block.per_class_n[cls]}
            row.update({column: _mean_ci(entry[key].get(cls)) if key in entry else "–"
                        for key, column in columns.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def localisation_timing(results: LocalisationRecord) -> str:
    """How long the record's run took, saying which scans the times cover: a run continued from its checkpoint
    timed only the scans it scored, and with Ray workers the CPU time is the driving process's only."""
    scored = results.n_images - results.records_reused
    text = f"{results.wall_seconds / 60:.1f} min wall"
    if results.records_reused:
        text += (f" for the {scored} scans of the last run; {results.records_reused} came from the checkpoint of "
                 "an earlier, interrupted run")
    if "--workers" in results.command or "--address" in results.command:
        return text + "; on Ray workers, whose CPU time is not counted"
    return text + f", {results.cpu_seconds / 60:.1f} min CPU"
