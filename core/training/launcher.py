"""Start, watch and cancel training runs as separate processes, one at a time.

The app never trains in its own process: `start_run` spawns `python -m train` in a new session
(it survives page reloads and browser closes) with its output in the run folder. A lock file
`<runs>/.active` (JSON: run_dir, pid, started) allows a single active run; a lock whose process
is gone is stale and is removed by the next `active_run` call.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import TrainingConfigError
from core.model.factory import resolve_weights
from core.training import run_files as rf
from core.training.loop import TrainConfig, validate

REPO = Path(__file__).resolve().parents[2]
LOCK_FILE = ".active"
PROCESS_LOG = "process.log"
LAUNCH_FILE = "launch.json"
TERMINAL_STATES = ("finished", "failed", "cancelled")


def runs_root() -> Path:
    """BRAINSCAN_RUNS if set, else <repo>/runs."""
    env = os.environ.get("BRAINSCAN_RUNS")
    return Path(env).expanduser() if env else REPO / "runs"


def default_data_dir() -> Path:
    """BRAINSCAN_DATA if set, else ../shared/data/brain-tumor-mri beside the repository."""
    env = os.environ.get("BRAINSCAN_DATA")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data" / "brain-tumor-mri"


COMMON_FLAGS = ("backbone", "weights", "image_size", "batch_size")
SCRATCH_FLAGS = ("epochs_scratch", "lr_scratch")
PRETRAINED_FLAGS = ("epochs_head", "lr_head", "epochs_finetune", "lr_finetune")


def train_command(config: TrainConfig, run_dir: Path) -> list[str]:
    """The `python -m train` command line for the launcher's choices in `config`."""
    names = COMMON_FLAGS + (SCRATCH_FLAGS if resolve_weights(config.weights) is None else PRETRAINED_FLAGS)
    if config.limit_per_class:
        names += ("limit_per_class",)
    if config.name:
        names += ("name",)
    command = [sys.executable, "-m", "train", "--data", str(config.data), "--run-dir", str(run_dir)]
    for name in names:
        command += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    return command


def check_options(config: TrainConfig) -> None:
    """Reject what would fail at once (the training's own checks, plus the data folder), with a message."""
    data = Path(config.data).expanduser()
    if not (data / "Training").is_dir() or not (data / "Testing").is_dir():
        raise TrainingConfigError(f"Data folder {data} needs Training/ and Testing/ sub-folders (one folder per class).")
    if config.backbone == "TinyCNN" and resolve_weights(config.weights) is not None:
        raise TrainingConfigError("TinyCNN has no pretrained weights; choose weights 'none'.")
    validate(config)


def pid_alive(pid: int) -> bool:
    """True while the process runs (a finished child of ours is reaped; zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_lock(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / LOCK_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def active_run(root: Path | None = None) -> dict[str, Any] | None:
    """The lock's {run_dir, pid, started} while its process lives; removes a stale lock."""
    root = Path(root or runs_root())
    lock = _read_lock(root)
    if lock is None:
        return None
    if pid_alive(int(lock.get("pid", 0))):
        return lock
    (root / LOCK_FILE).unlink(missing_ok=True)
    return None


def _take_lock(root: Path, content: dict[str, Any]) -> None:
    if active_run(root) is not None:
        lock = _read_lock(root) or {}
        raise TrainingConfigError(f"A training run is already active ({lock.get('run_dir')}, pid {lock.get('pid')}). "
                                  "Wait for it to finish or cancel it first.")
    try:
        fd = os.open(root / LOCK_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError as exc:
        raise TrainingConfigError("Another training run is starting right now; try again in a moment.") from exc
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle)


def new_run_dir(root: Path, config: TrainConfig) -> Path:
    """A fresh folder name: <timestamp>-<backbone>[-<name>]."""
    stem = "-".join(filter(None, [time.strftime("%Y%m%d-%H%M%S"), config.backbone.lower(),
                                  "".join(c if c.isalnum() or c in "-_" else "_" for c in config.name)]))
    run_dir, n = root / stem, 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{stem}-{n}"
    return run_dir


def start_run(config: TrainConfig, root: Path | None = None) -> dict[str, Any]:
    """Spawn the training process and take the lock; returns the lock content."""
    check_options(config)
    root = Path(root or runs_root())
    root.mkdir(parents=True, exist_ok=True)
    run_dir = new_run_dir(root, config)
    _take_lock(root, {"run_dir": str(run_dir), "pid": os.getpid(), "started": time.time()})
    try:
        run_dir.mkdir(parents=True)
        with open(run_dir / PROCESS_LOG, "wb") as out:
            process = subprocess.Popen(train_command(config, run_dir), cwd=REPO, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except OSError as exc:
        (root / LOCK_FILE).unlink(missing_ok=True)
        raise TrainingConfigError(f"Cannot start training: {exc}") from exc
    lock = {"run_dir": str(run_dir), "pid": process.pid, "started": time.time()}
    rf.write_json(run_dir / LAUNCH_FILE, {**lock, "command": train_command(config, run_dir)})
    rf.write_json(root / LOCK_FILE, lock)
    return lock


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's status file; a dead process that left no final state is reported as failed."""
    run_dir = Path(run_dir)
    status = rf.read_status(run_dir)
    pid = status.get("pid") or (rf.read_json(run_dir / LAUNCH_FILE) or {}).get("pid")
    state = status.get("state")
    if state not in TERMINAL_STATES and not (pid and pid_alive(int(pid))):
        tail = process_log_tail(run_dir, 5)
        status = {**status, "state": "failed",
                  "error": status.get("error") or f"The training process ended unexpectedly. {tail}".strip()}
    return status


def process_log_tail(run_dir: str | Path, lines: int = 20) -> str:
    """Last lines of the process output (stdout + stderr), where start-up errors land."""
    path = Path(run_dir) / PROCESS_LOG
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def list_runs(root: Path | None = None) -> list[Path]:
    """Run folders (those with a config or process log), newest first."""
    root = Path(root or runs_root())
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and ((p / rf.CONFIG_FILE).exists() or (p / PROCESS_LOG).exists())]
    return sorted(runs, key=_mtime, reverse=True)


def latest_run(root: Path | None = None) -> Path | None:
    """The active run's folder, else the most recently started one."""
    lock = active_run(root)
    if lock:
        return Path(lock["run_dir"])
    runs = list_runs(root)
    return runs[0] if runs else None


def cancel_run(root: Path | None = None) -> Path | None:
    """Ask the active run to stop after its current batch (its best checkpoint is exported)."""
    lock = active_run(root)
    if lock is None:
        return None
    rf.request_cancel(lock["run_dir"])
    return Path(lock["run_dir"])
