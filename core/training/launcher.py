"""Start, watch and cancel training runs as separate processes, one at a time.

The app never trains in its own process: `start_run` spawns `python -m train` in a new session
(it survives page reloads and browser closes) with its output in the run folder. A lock file
`<runs>/.active` (JSON: run_dir, pid, started) allows a single active run; a lock whose process
is gone is stale and is removed by the next `active_run` call. A cancel is the run's CANCEL file (the run stops
at its next batch end); `run_status` reports "cancelling" from the moment it is written. `estimate_run` gives the
form's duration estimate (`estimate_seconds` is its arithmetic).

Starting and cancelling need a `LauncherAccess`: closed by default, the launcher works without a
password only when the app is bound to localhost or an explicit setting opens it; a configured
password is always required (checked with `hmac.compare_digest` on every start and cancel, failed
attempts limited by `AttemptLimiter`); data and weights paths must lie inside configured roots.
"""
from __future__ import annotations

import hmac
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import settings as config
from core.data.discovery import discover
from core.errors import LauncherAccessError, TrainingConfigError
from core.model.factory import resolve_weights
from core.settings import settings as _settings
from core.training import run_files as rf
from core.training.config import TrainConfig, plan_phases, validate

REPO = Path(__file__).resolve().parents[2]
LOCK_FILE = ".active"
PROCESS_LOG = "process.log"
LAUNCH_FILE = "launch.json"
TERMINAL_STATES = ("finished", "failed", "cancelled")


def runs_root() -> Path:
    """BRAINSCAN_RUNS if set, else <repo>/runs."""
    return config.settings().runs


def default_data_dir() -> Path:
    """BRAINSCAN_DATA if set, else ../shared/data/brain-tumor-mri beside the repository."""
    return config.settings().data or REPO.parent / "shared" / "data" / "brain-tumor-mri"


LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
PASSWORD_SETTING, PASSWORD_ENV = "launcher_password", "BRAINSCAN_LAUNCHER_PASSWORD"
OPEN_SETTING, OPEN_ENV = "launcher_open_without_password", "BRAINSCAN_LAUNCHER_OPEN"
DATA_ROOTS_SETTING, DATA_ROOTS_ENV = "launcher_data_roots", "BRAINSCAN_DATA_ROOTS"
WEIGHTS_ROOTS_SETTING, WEIGHTS_ROOTS_ENV = "launcher_weights_roots", "BRAINSCAN_WEIGHTS_ROOTS"
NOT_A_PATH = ("", "none", "scratch", "imagenet")


def default_weights_roots() -> tuple[Path, ...]:
    """<repo>/weights and Keras' own cache (~/.keras/models)."""
    return REPO / "weights", Path("~/.keras/models").expanduser()


@dataclass(frozen=True)
class LauncherAccess:
    """Who may start and cancel runs, and on which folders.

    `password`: the configured launcher password (None: none set). `server_address`: the address the app
    listens on (Streamlit's server.address; None or empty means every interface). `open_without_password`:
    the explicit setting that opens a non-local app without a password.
    """

    password: str | None = None
    server_address: str | None = None
    open_without_password: bool = False
    data_roots: tuple[Path, ...] = field(default_factory=lambda: (default_data_dir(),))
    weights_roots: tuple[Path, ...] = field(default_factory=default_weights_roots)

    @property
    def local_only(self) -> bool:
        """True when the app is bound to a loopback address, so only this machine can reach it."""
        return (self.server_address or "").strip().strip("[]").lower() in LOCAL_ADDRESSES

    @property
    def needs_password(self) -> bool:
        """A configured password is always asked for; without one, only a local or explicitly opened app is open."""
        return bool(self.password) or not (self.local_only or self.open_without_password)

    def authorise(self, password: str | None) -> None:
        """Raise LauncherAccessError unless `password` opens the launcher (constant-time comparison)."""
        if not self.needs_password:
            return
        if not self.password:
            raise LauncherAccessError(
                "The training launcher is closed: the app is reachable from other machines and no launcher password "
                f"is set ({PASSWORD_SETTING} in .streamlit/secrets.toml or {PASSWORD_ENV}).")
        if not hmac.compare_digest((password or "").encode(), self.password.encode()):
            raise LauncherAccessError("Wrong launcher password.")

    def check_paths(self, config: TrainConfig) -> None:
        """Refuse a data folder or weights file outside the allowed roots, with a message that is the same
        whether or not the path exists (symbolic links are followed before the check)."""
        _inside(config.data, self.data_roots, "The data folder")
        if str(config.weights or "").lower() not in NOT_A_PATH:
            _inside(str(config.weights), self.weights_roots, "The weights file")


def _inside(value: str, roots: tuple[Path, ...], what: str) -> None:
    real = Path(os.path.realpath(Path(value).expanduser()))
    if not any(real.is_relative_to(os.path.realpath(root)) for root in roots):
        allowed = ", ".join(str(root) for root in roots) or "(none configured)"
        raise LauncherAccessError(f"{what} must be inside one of the allowed folders: {allowed}.")


def access_from_settings(settings: Mapping[str, Any], server_address: str | None) -> LauncherAccess:
    """The launcher's access rules from the app's secrets (`settings`), else the environment, else defaults."""
    env = config.settings()

    def pick(name: str, parse: Callable[[Any], Any], from_env: Any) -> Any:
        value = settings.get(name)
        return from_env if value in (None, "") else parse(value)

    password = pick(PASSWORD_SETTING, lambda value: value, env.launcher_password)
    return LauncherAccess(
        password=str(password) if password else None, server_address=server_address,
        open_without_password=pick(OPEN_SETTING, config.parse_flag, env.launcher_open),
        data_roots=pick(DATA_ROOTS_SETTING, config.parse_paths, env.data_roots) or (default_data_dir(),),
        weights_roots=pick(WEIGHTS_ROOTS_SETTING, config.parse_paths, env.weights_roots) or default_weights_roots())


@dataclass
class AttemptLimiter:
    """Password attempts of one session: after `max_failures` wrong ones in a row it refuses every attempt
    for `base_seconds`, doubling with each further failure up to `max_seconds`."""

    max_failures: int = 5
    base_seconds: float = 30.0
    max_seconds: float = 900.0
    failures: int = 0
    locked_until: float = 0.0

    def wait_seconds(self, now: float | None = None) -> float:
        """Seconds until the next attempt is accepted (0: now)."""
        return max(self.locked_until - (time.monotonic() if now is None else now), 0.0)

    def attempt(self, access: LauncherAccess, password: str, now: float | None = None) -> None:
        """Check `password` unless locked out; raise LauncherAccessError when refused."""
        now = time.monotonic() if now is None else now
        wait = self.wait_seconds(now)
        if wait > 0:
            raise LauncherAccessError(f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
        try:
            access.authorise(password)
        except LauncherAccessError:
            self.failures += 1
            if self.failures >= self.max_failures:
                delay = min(self.base_seconds * 2 ** (self.failures - self.max_failures), self.max_seconds)
                self.locked_until = now + delay
            raise
        self.failures = 0


COMMON_FLAGS = ("backbone", "weights", "image_size", "batch_size")
SCRATCH_FLAGS = ("epochs_scratch", "lr_scratch", "warmup_epochs")
PRETRAINED_FLAGS = ("epochs_head", "lr_head", "epochs_finetune", "lr_finetune", "unfreeze_top")


def from_scratch(weights: str | None) -> bool:
    """True when `weights` selects the from-scratch recipe (as `resolve_weights` reads it, without touching files)."""
    return weights is None or str(weights).lower() in ("", "none", "scratch")


def recipe_flags(config: TrainConfig) -> tuple[str, ...]:
    """The options of the recipe `config.weights` selects: from scratch (weights none) or two-phase transfer."""
    return SCRATCH_FLAGS if from_scratch(config.weights) else PRETRAINED_FLAGS


def train_command(config: TrainConfig, run_dir: Path) -> list[str]:
    """The `python -m train` command line for the launcher's choices in `config`. Every value is joined to its
    flag (`--name=-x`), so values starting with `-` are never taken for options."""
    names = COMMON_FLAGS + recipe_flags(config)
    if config.limit_per_class:
        names += ("limit_per_class",)
    if config.name:
        names += ("name",)
    command = [sys.executable, "-m", "train", f"--data={config.data}", f"--run-dir={run_dir}",
               f"--nice={_settings().train_nice}"]
    return command + [f"--{name.replace('_', '-')}={getattr(config, name)}" for name in names]


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


def start_run(config: TrainConfig, root: Path | None = None, *, access: LauncherAccess,
              password: str | None = None) -> dict[str, Any]:
    """Check the password and paths, spawn the training process and take the lock; returns the lock content."""
    access.authorise(password)
    access.check_paths(config)
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
    """The run's status file; a dead process that left no final state is reported as failed, a live one asked to
    cancel (its CANCEL file, written at once by `cancel_run`) as "cancelling" until it has stopped."""
    run_dir = Path(run_dir)
    status = rf.read_status(run_dir)
    pid = status.get("pid") or (rf.read_json(run_dir / LAUNCH_FILE) or {}).get("pid")
    state = status.get("state")
    if state not in TERMINAL_STATES and not (pid and pid_alive(int(pid))):
        tail = process_log_tail(run_dir, 5)
        status = {**status, "state": "failed",
                  "error": status.get("error") or f"The training process ended unexpectedly. {tail}".strip()}
    elif state not in TERMINAL_STATES and (requested := _cancel_requested(run_dir)) is not None:
        status = {**status, "state": "cancelling", "cancel_requested": requested}
    return status


def _cancel_requested(run_dir: Path) -> float | None:
    """When the run's CANCEL file was written (its content, else its time stamp); None without one."""
    path = run_dir / rf.CANCEL_FILE
    try:
        text = path.read_text().strip()
        return float(text) if text else path.stat().st_mtime
    except ValueError:
        return _mtime(path)
    except OSError:
        return None


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


def cancel_run(root: Path | None = None, *, access: LauncherAccess, password: str | None = None) -> Path | None:
    """Check the password, then ask the active run to stop after its current batch (its best checkpoint is exported).

    The request is the run's CANCEL file, written here at once: from then on `run_status` reports "cancelling"
    (status.json itself is only ever written by the training process, so no final state can be overwritten)."""
    access.authorise(password)
    lock = active_run(root)
    if lock is None:
        return None
    rf.request_cancel(lock["run_dir"])
    return Path(lock["run_dir"])


# The duration estimate shown before a run starts. Throughput (training images per second) comes from the epochs of
# finished runs with the same backbone and image size (history.json's images_per_second), else from a default.
DEFAULT_IMAGES_PER_SECOND = 15.0  # EfficientNetB0, 128 px, training, on this project's 2-core CPU (docs/training.md)
DEFAULT_IMAGE_SIZE = 128
# Relative cost of a training step at the same image size (EfficientNet depth x width^2; TinyCNN is a toy).
BACKBONE_COST = {"EfficientNetB0": 1.0, "EfficientNetB1": 1.1, "EfficientNetB2": 1.45, "EfficientNetB3": 2.0,
                 "EfficientNetB4": 3.5, "TinyCNN": 0.05}
INFERENCE_SPEEDUP = 3.0         # a forward pass (validation, test) costs about a third of a training step
LOAD_IMAGES_PER_SECOND = 100.0  # reading, cropping and resizing the scans before the first epoch


def estimate_seconds(phases: list[tuple[int, float]], train_images: int, validation_images: int,
                     test_images: int = 0, inference_speedup: float = INFERENCE_SPEEDUP,
                     load_images_per_second: float = LOAD_IMAGES_PER_SECOND) -> float:
    """Estimated wall time of a run: reading every scan once, then per phase `epochs` x (training images at its
    throughput + validation images at `inference_speedup` x that), then the final evaluation (validation and
    test images at the last phase's inference speed). `phases`: (epochs, training images per second) each.
    Early stopping can only make a run shorter."""
    if not phases or any(ips <= 0 for _, ips in phases):
        raise ValueError("every phase needs a positive throughput")
    seconds = (train_images + validation_images + test_images) / load_images_per_second
    for epochs, ips in phases:
        seconds += epochs * (train_images / ips + validation_images / (inference_speedup * ips))
    return seconds + (validation_images + test_images) / (inference_speedup * phases[-1][1])


def default_throughput(backbone: str, image_size: int) -> float:
    """Training images per second without a recorded run: DEFAULT_IMAGES_PER_SECOND for EfficientNetB0 at 128 px,
    scaled by the backbone's relative cost and by the pixel count (the measurements behind the default:
    docs/training.md, "The duration estimate")."""
    cost = BACKBONE_COST.get(backbone, BACKBONE_COST["EfficientNetB4"])
    return DEFAULT_IMAGES_PER_SECOND / cost * (DEFAULT_IMAGE_SIZE / image_size) ** 2


def recorded_throughput(backbone: str, image_size: int, phase: str, root: Path | None = None) -> tuple[float, int]:
    """(median images per second, number of epochs) over the `phase` epochs of finished runs under `root` with this
    backbone and image size; (0.0, 0) when none recorded it (history rows before images_per_second lack it)."""
    values = []
    for run_dir in list_runs(root):
        config = rf.read_json(run_dir / rf.CONFIG_FILE) or {}
        if (config.get("backbone"), config.get("image_size")) != (backbone, image_size):
            continue
        if rf.read_status(run_dir).get("state") != "finished":
            continue
        rows = rf.read_json(run_dir / rf.HISTORY_FILE, []) or []
        values += [float(r["images_per_second"]) for r in rows if isinstance(r, dict) and r.get("phase") == phase
                   and isinstance(r.get("images_per_second"), (int, float)) and r["images_per_second"] > 0]
    if not values:
        return 0.0, 0
    values.sort()
    middle = len(values) // 2
    return (values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2), len(values)


@dataclass(frozen=True)
class DurationEstimate:
    """What `estimate_run` found: the total, the image counts and, per phase, its throughput and where it came from."""

    seconds: float
    train_images: int
    validation_images: int
    test_images: int
    phases: tuple[tuple[str, int, float, str], ...]  # (phase, epochs, training images per second, source)

    def explanation(self) -> str:
        """One line: the inputs of the arithmetic, so the estimate can be checked."""
        parts = [f"{name} {epochs} epochs at {ips:.3g} img/s ({source})" for name, epochs, ips, source in self.phases]
        return (f"{self.train_images:,} training, {self.validation_images:,} validation and {self.test_images:,} test "
                f"images; " + "; ".join(parts) + "; validation and test at 3x that; early stopping can end it sooner")


def _split_counts(config: TrainConfig) -> tuple[int, int, int]:
    """(train, validation, test) images the run would use: per class, the protocol's split of the files found
    (grouped/default: `val_fraction` of Training; spec: Testing halved), each capped at `limit_per_class`."""
    index = discover(config.data)
    training = Counter(s.label for s in index.splits["Training"])
    testing = Counter(s.label for s in index.splits["Testing"])
    cap = config.limit_per_class or None
    train = validation = test = 0
    for label in range(len(index.class_names)):
        if config.protocol == "spec":
            parts = (training[label], testing[label] // 2, testing[label] - testing[label] // 2)
        else:
            held = round(config.val_fraction * training[label])
            parts = (training[label] - held, held, testing[label])
        train, validation, test = (total + min(n, cap or n) for total, n in zip((train, validation, test), parts))
    return train, validation, test


def estimate_run(config: TrainConfig, access: LauncherAccess, root: Path | None = None) -> DurationEstimate:
    """The estimated duration of the run `config` describes (the folder is read only inside the allowed roots:
    LauncherAccessError otherwise; a data folder without the expected layout raises DataLayoutError)."""
    access.check_paths(config)
    train, validation, test = _split_counts(config)
    phases = []
    for phase in plan_phases(config):
        if phase.epochs < 1:
            continue
        ips, epochs_seen = recorded_throughput(config.backbone, config.image_size, phase.name, root)
        source = (f"median of {epochs_seen} recorded epoch{'s' * (epochs_seen != 1)}" if epochs_seen else
                  "default for this backbone and size on a 2-core CPU")
        phases.append((phase.name, phase.epochs, ips or default_throughput(config.backbone, config.image_size), source))
    if not phases:
        raise TrainingConfigError("At least one epoch is needed.")
    seconds = estimate_seconds([(epochs, ips) for _, epochs, ips, _ in phases], train, validation, test)
    return DurationEstimate(seconds, train, validation, test, tuple(phases))
