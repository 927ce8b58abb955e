"""External validation: a model on scans from other collections (the `external-eval` layout).

A set is a folder with `labels.csv` (`file,label[,source,notes]`); a root holds several such folders. Truth per
image: `tumour` (or a tumour class name) -> tumour; `notumor` -> normal; `near_ood` whose notes say
`truth: glioma` -> tumour; `brain_other` whose notes say `no tumour` -> normal; anything else (e.g. `far_ood`)
has no truth and only its predicted-class distribution is reported. Reported per set and, where the notes
give it (`plane=ax|sa|co`), per plane: tumour recall (any tumour class vs notumor) and notumor specificity with
Wilson 95% intervals. For reporting only: nothing here trains, tunes or selects anything.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import DataLayoutError, ImageDecodeError
from core.io.images import load_for_model
from core.model.card import ModelCard
from core.model.inference import predict_proba
from core.stats import wilson

LABELS_FILE = "labels.csv"
NORMAL = "notumor"
PLANES = {"ax": "axial", "sa": "sagittal", "co": "coronal"}


def find_sets(root: str | Path) -> dict[str, Path]:
    """Set name -> folder: `root` itself when it has labels.csv, else its sub-folders that have one."""
    root = Path(root).expanduser()
    if (root / LABELS_FILE).is_file():
        return {root.name: root}
    sets = {p.name: p for p in sorted(root.iterdir()) if (p / LABELS_FILE).is_file()} if root.is_dir() else {}
    if not sets:
        raise DataLayoutError(f"{root} has no {LABELS_FILE} and no sub-folder with one "
                              f"(expected columns file,label[,source,notes])")
    return sets


def truth(label: str, notes: str, class_names: list[str]) -> str | None:
    """'tumour', 'normal' or None (no ground truth for tumour status)."""
    label, notes = label.strip().lower(), notes.lower()
    if label == "tumour" or (label in class_names and label != NORMAL):
        return "tumour"
    if label == NORMAL:
        return "normal"
    if "truth: glioma" in notes or "truth: meningioma" in notes or "truth: pituitary" in notes:
        return "tumour"
    if label == "brain_other" and "no tumour" in notes:
        return "normal"
    return None


def plane(notes: str) -> str | None:
    """The imaging plane named in the notes (`plane=ax`), if any."""
    found = re.search(r"plane=(ax|sa|co)\b", notes)
    return PLANES[found.group(1)] if found else None


def proportion(k: int, n: int) -> dict[str, Any]:
    """k/n with its Wilson 95% interval (None when n = 0)."""
    if n == 0:
        return {"value": None, "ci95": None, "k": 0, "n": 0}
    return {"value": k / n, "ci95": wilson(k, n).to_list(), "k": int(k), "n": int(n)}


def _summary(rows: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    predicted = [r["predicted"] for r in rows]
    tumours = [r for r in rows if r["truth"] == "tumour"]
    normals = [r for r in rows if r["truth"] == "normal"]
    out: dict[str, Any] = {"n": len(rows),
                           "predicted": {c: predicted.count(c) for c in class_names}}
    if tumours:
        out["tumour_recall"] = proportion(sum(r["predicted"] != NORMAL for r in tumours), len(tumours))
    if normals:
        out["notumor_specificity"] = proportion(sum(r["predicted"] == NORMAL for r in normals), len(normals))
    return out


def evaluate_set(model: Any, card: ModelCard, folder: Path,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The model on one set: overall and per-plane summaries, per-file predictions, unreadable files."""
    with (folder / LABELS_FILE).open(newline="") as handle:
        entries = list(csv.DictReader(handle))
    if entries and not {"file", "label"} <= set(entries[0]):
        raise DataLayoutError(f"{folder / LABELS_FILE} needs the columns file,label")
    rows, skipped = [], []
    for i, entry in enumerate(entries):
        try:
            image = load_for_model(folder / entry["file"], card.image_size, entry["file"], card.crop)
        except ImageDecodeError as exc:
            skipped.append(str(exc))
        else:
            proba = predict_proba(model, image[None])[0]
            notes = entry.get("notes") or ""
            rows.append({"file": entry["file"], "label": entry["label"],
                         "truth": truth(entry["label"], notes, card.class_names), "plane": plane(notes),
                         "predicted": card.class_names[int(proba.argmax())],
                         "probabilities": [round(float(p), 6) for p in proba]})
        if progress:
            progress(i + 1, len(entries))
    result = {**_summary(rows, card.class_names), "skipped": skipped}
    planes = sorted({r["plane"] for r in rows if r["plane"]})
    if planes:
        result["per_plane"] = {p: _summary([r for r in rows if r["plane"] == p], card.class_names) for p in planes}
    result["predictions"] = rows
    return result


def evaluate_external(model: Any, card: ModelCard, root: str | Path,
                      progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Every set under `root` (or `root` itself): {set name: evaluate_set(...)}."""
    return {name: evaluate_set(model, card, folder, (lambda i, n, s=name: progress(s, i, n)) if progress else None)
            for name, folder in find_sets(root).items()}


def headline_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per set and plane (for tables): n, tumour recall, specificity, share called notumor."""
    rows = []
    for name, result in results.items():
        parts = [(name, result)] + [(f"{name} · {p}", r) for p, r in result.get("per_plane", {}).items()]
        for label, r in parts:
            n = r["n"]
            rows.append({"set": label, "n": n,
                         "tumour_recall": r.get("tumour_recall"), "notumor_specificity": r.get("notumor_specificity"),
                         "called_notumor": r["predicted"].get(NORMAL, 0) / n if n else None})
    return rows
