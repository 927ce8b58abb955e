"""The files of a training run folder, written so that a poller or a crash never sees half of one.

Small JSON files are written to a temporary name and renamed. A checkpoint is a folder
`checkpoints/ckpt-NNNNNN/` holding `last.keras` (model + optimiser), `best.weights.h5` and `state.json`:
it is assembled under a temporary name, fsynced and published by one rename, so the model and the
state that says which epoch it holds can never disagree. The exported `model/` is published the same way.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.io.atomic import atomic_write_text
from core.settings import settings

STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
LOG_FILE = "train.log"
CANCEL_FILE = "CANCEL"
MODEL_SUBDIR = "model"
CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_MODEL = "last.keras"
CHECKPOINT_STATE = "state.json"
BEST_WEIGHTS = "best.weights.h5"
CHECKPOINT_PREFIX = "ckpt-"
STAGING_PREFIX = ".staging-"
KILL_AT_ENV = "BRAINSCAN_TEST_KILL_AT"

_CHECKPOINT_NAME = re.compile(rf"{CHECKPOINT_PREFIX}(\d+)")
_reached: dict[str, int] = {}


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a folder cannot be opened on Windows; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any, durable: bool = False) -> None:
    """Write JSON via a temporary file and an atomic rename; `durable` also fsyncs it and its folder
    (survives a power cut; used once per epoch, not for the status polled every few seconds)."""
    text = json.dumps(data, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)) + "\n"
    if durable:
        atomic_write_text(path, text)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
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


def crash_point(name: str) -> None:
    """Test-only hook: with BRAINSCAN_TEST_KILL_AT=NAME[:N] the process SIGKILLs itself the N-th time
    (default: the first) it reaches the point NAME ("checkpoint", "evaluation", "export"). Unset, it does nothing."""
    wanted = settings().test_kill_at
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def staging_dir(final: Path) -> Path:
    """A fresh, empty temporary folder beside `final`, to be published with `publish_dir` (leftovers of
    a killed process for the same `final` are removed)."""
    for stale in final.parent.glob(f"{STAGING_PREFIX}{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f"{STAGING_PREFIX}{final.name}-{os.getpid()}")
    tmp.mkdir(parents=True)
    return tmp


def publish_dir(tmp: Path, final: Path) -> None:
    """fsync every file of `tmp`, then make it `final` by one rename (a previous `final` is moved aside
    first and deleted after); readers see the old folder, no folder, or the complete new one."""
    for path in tmp.rglob("*"):
        if path.is_file():
            _fsync(path)
    _fsync(tmp)
    old = None
    if final.exists():
        old = final.with_name(f"{STAGING_PREFIX}{final.name}-old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest published checkpoint folder under `root` (checkpoints/); a run folder written before
    checkpoints became folders (last.keras + state.json directly in `root`) counts as one; None if none."""
    published = [(int(m.group(1)), p) for p in Path(root).glob(f"{CHECKPOINT_PREFIX}*")
                 if (m := _CHECKPOINT_NAME.fullmatch(p.name)) and p.is_dir()]
    if published:
        return max(published)[1]
    legacy = Path(root)
    if (legacy / CHECKPOINT_MODEL).is_file() and (legacy / CHECKPOINT_STATE).is_file():
        return legacy
    return None


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def save_checkpoint(root: Path, state: dict[str, Any], save_model: Callable[[Path], None] | None = None,
                    save_best: Callable[[Path], None] | None = None) -> Path | None:
    """Publish a new checkpoint: the model (`save_model`, else the previous checkpoint's), the best weights
    (`save_best`, else the previous ones) and `state`, as one unit; older checkpoints are then removed.
    Returns the new folder, or None when there is no model to keep (`save_model` None and no checkpoint yet)."""
    root = Path(root)
    previous = latest_checkpoint(root)
    if save_model is None and previous is None:
        return None
    number = int(_CHECKPOINT_NAME.fullmatch(previous.name).group(1)) + 1 if previous and previous != root else 1
    final = root / f"{CHECKPOINT_PREFIX}{number:06d}"
    tmp = staging_dir(final)
    if save_best is not None:
        save_best(tmp / BEST_WEIGHTS)
    elif previous is not None and (previous / BEST_WEIGHTS).is_file():
        _link_or_copy(previous / BEST_WEIGHTS, tmp / BEST_WEIGHTS)
    if save_model is not None:
        save_model(tmp / CHECKPOINT_MODEL)
    else:
        _link_or_copy(previous / CHECKPOINT_MODEL, tmp / CHECKPOINT_MODEL)
    crash_point("checkpoint")
    write_json(tmp / CHECKPOINT_STATE, state)
    publish_dir(tmp, final)
    for path in root.iterdir():
        if path != final and path.is_dir() and (path.name.startswith(STAGING_PREFIX) or
                                                 _CHECKPOINT_NAME.fullmatch(path.name)):
            shutil.rmtree(path, ignore_errors=True)
    return final
