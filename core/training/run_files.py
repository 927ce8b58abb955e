"""The files of a training run folder, written atomically so a poller never reads half a file."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
LOG_FILE = "train.log"
CANCEL_FILE = "CANCEL"
MODEL_SUBDIR = "model"
CHECKPOINT_SUBDIR = "checkpoints"


def write_json(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)) + "\n")
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file, or `default` if it is missing or being replaced."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's status (state, phase, epoch, metrics, ETA); {} if it has not started writing."""
    return read_json(Path(run_dir) / STATUS_FILE, {}) or {}


def update_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge fields into status.json and stamp the time."""
    status = read_status(run_dir)
    status.update(fields, updated=time.time())
    write_json(run_dir / STATUS_FILE, status)
    return status


def request_cancel(run_dir: str | Path) -> None:
    """Ask a running training to stop after the current batch (it keeps its best checkpoint)."""
    (Path(run_dir) / CANCEL_FILE).write_text(str(time.time()))
