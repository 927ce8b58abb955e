"""The models the app can use, training's part: finished runs' model folders (after the default model, from
`core.model.catalog`) and a run's per-epoch history."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.model.card import MODEL_FILE
from core.model.catalog import ModelEntry, default_entry, model_entry
from core.training import run_files as rf


def finished_run_entry(run_dir: Path) -> ModelEntry | None:
    """The run's model if the run finished and its model folder is complete (a non-empty model file and a
    readable card holding the test evaluation); None for unfinished, cancelled, failed or damaged runs."""
    if rf.read_status(run_dir).get("state") != "finished":
        return None
    model_dir = Path(run_dir) / rf.MODEL_SUBDIR
    try:
        if (model_dir / MODEL_FILE).stat().st_size == 0:
            return None
    except OSError:
        return None
    entry = model_entry(model_dir, f"run {Path(run_dir).name}")
    if entry.card is None or "test" not in (entry.card.evaluation or {}):
        return None
    return entry


def list_models(runs: Path | None) -> list[ModelEntry]:
    """The default model (if present) then the finished runs' runs/*/model folders, newest first."""
    default = default_entry()
    entries = [default] if default is not None else []
    if runs is not None and Path(runs).is_dir():
        finished = [e for p in Path(runs).iterdir() if p.is_dir() and (e := finished_run_entry(p)) is not None]
        entries += sorted(finished, key=lambda e: e.mtime, reverse=True)
    return entries


def history_for(model_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch training history: model_dir/history.json, else the run folder's history.json."""
    for path in (Path(model_dir) / rf.HISTORY_FILE, Path(model_dir).parent / rf.HISTORY_FILE):
        rows = rf.read_json(path)
        if isinstance(rows, list):
            return rows
    return []
