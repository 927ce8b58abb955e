"""Every environment variable the project reads, with its default and meaning, in one place.

`settings()` reads `os.environ` afresh on each call (so tests can monkeypatch it) into a frozen `Settings`.
Adding a variable is one field below: its `metadata` names the variable, how its text is parsed and what it
means; `variables()` lists them for the README's configuration table (tests keep the two in step).
Defaults that depend on the caller (e.g. the dataset root, which the CLI requires but the launcher fills in)
stay `None` here and are resolved where they are used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def parse_text(value: str) -> str | None:
    """Text as given; an empty value counts as unset."""
    return value or None


def parse_path(value: str) -> Path | None:
    """One folder or file, `~` expanded; empty counts as unset."""
    return Path(value).expanduser() if value else None


def parse_flag(value: Any) -> bool:
    """`1`, `true`, `yes` or `on` (any case) switch a flag on; anything else leaves it off."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_paths(value: Any) -> tuple[Path, ...]:
    """Folders separated by the platform's path separator (`:` on Linux), or a list of them (from secrets)."""
    if not value:
        return ()
    items = value.split(os.pathsep) if isinstance(value, str) else list(value)
    return tuple(Path(str(item)).expanduser() for item in items if str(item).strip())


def parse_int(value: str) -> int:
    """A whole number (`2000`, `2_000`)."""
    return int(value.replace("_", ""))


def parse_float(value: str) -> float:
    """A decimal number (`20`, `2.5`)."""
    return float(value)


def _variable(env: str, parse: Callable[[str], Any], meaning: str, default: Any = None, secret: bool = False) -> Any:
    """A settings field read from `env` with `parse`; `default` when the variable is unset; a `secret` is left out
    of the settings' repr (so it never reaches a log line or a traceback)."""
    return field(default=default, repr=not secret, metadata={"env": env, "parse": parse, "meaning": meaning})


@dataclass(frozen=True)
class Settings:
    """The environment as the project reads it (see the module docstring)."""

    model: Path | None = _variable(
        "BRAINSCAN_MODEL", parse_path, "model folder for the app and `--model` (default: the bundled model)")
    data: Path | None = _variable(
        "BRAINSCAN_DATA", parse_path, "dataset root with Training/ and Testing/ (`--data` default)")
    masks: Path | None = _variable(
        "BRAINSCAN_MASKS", parse_path, "expert masks folder (default: beside the dataset root)")
    runs: Path = _variable("BRAINSCAN_RUNS", parse_path, "training runs folder", REPO / "runs")
    state_dir: Path = _variable(
        "BRAINSCAN_STATE_DIR", parse_path, "folder of the SQLite audit store", REPO / "state")
    db_url: str | None = _variable(
        "BRAINSCAN_DB_URL", parse_text, "SQLAlchemy URL of the audit store (default: SQLite in the state folder)")
    launcher_password: str | None = _variable(
        "BRAINSCAN_LAUNCHER_PASSWORD", parse_text, "launcher password (secrets.toml wins)")
    launcher_open: bool = _variable(
        "BRAINSCAN_LAUNCHER_OPEN", parse_flag, "open the launcher without a password on a non-local address", False)
    data_roots: tuple[Path, ...] = _variable(
        "BRAINSCAN_DATA_ROOTS", parse_paths, "folders the launcher may train on (default: the data folder)", ())
    weights_roots: tuple[Path, ...] = _variable(
        "BRAINSCAN_WEIGHTS_ROOTS", parse_paths, "folders the launcher may read weights from", ())
    explain_slots: int = _variable(
        "BRAINSCAN_EXPLAIN_SLOTS", parse_int, "explanations the app computes at once; later ones queue and are shown "
        "their place (docs/reliability.md#soak)", 1)
    train_nice: int = _variable(
        "BRAINSCAN_TRAIN_NICE", parse_int, "CPU nice value (0-19) of a run the sidebar launcher starts: the app's "
        "sessions come first (docs/reliability.md#soak)", 10)
    quick: bool = _variable("BRAINSCAN_QUICK", parse_flag, "`xai-eval` uses coarser metrics (as `--quick`)", False)
    engine: str = _variable(
        "BRAINSCAN_ENGINE", parse_text, "forward-pass engine: `auto` (OpenVINO if it passes the load check, else "
        "TensorFlow), `tensorflow`, `openvino`, `openvino-f32` or `openvino-bf16`", "auto")
    engine_cache: Path = _variable(
        "BRAINSCAN_ENGINE_CACHE", parse_path, "folder of converted OpenVINO models, keyed by the model file's hash",
        Path.home() / ".cache" / "brainscan" / "openvino")
    verbose: bool = _variable("BRAINSCAN_VERBOSE", parse_flag, "keep TensorFlow's and OpenCV's log lines", False)
    test_kill_at: str | None = _variable(
        "BRAINSCAN_TEST_KILL_AT", parse_text, "test-only: training kills itself at NAME[:N]")
    pacs_url: str | None = _variable(
        "BRAINSCAN_PACS_URL", parse_text, "DICOMweb root of the PACS, e.g. `http://127.0.0.1:8042/dicom-web` "
        "(no credentials in it)")
    pacs_token: str | None = _variable(
        "BRAINSCAN_PACS_TOKEN", parse_text, "PACS bearer token (or user and password below)", secret=True)
    pacs_user: str | None = _variable("BRAINSCAN_PACS_USER", parse_text, "PACS basic-auth user", secret=True)
    pacs_password: str | None = _variable(
        "BRAINSCAN_PACS_PASSWORD", parse_text, "PACS basic-auth password", secret=True)
    pacs_verify_tls: bool = _variable(
        "BRAINSCAN_PACS_VERIFY_TLS", parse_flag, "verify the PACS's TLS certificate (`0` switches it off)", True)
    pacs_timeout_s: float = _variable(
        "BRAINSCAN_PACS_TIMEOUT", parse_float, "seconds to wait for each PACS answer", 20.0)
    pacs_retries: int = _variable(
        "BRAINSCAN_PACS_RETRIES", parse_int, "retries (exponential back-off) of a PACS request that failed", 3)
    pacs_max_instances: int = _variable(
        "BRAINSCAN_PACS_MAX_INSTANCES", parse_int, "series with this many instances or more are not retrieved", 2000)
    pacs_max_bytes: int = _variable(
        "BRAINSCAN_PACS_MAX_BYTES", parse_int, "series declaring this many bytes or more are not retrieved",
        2 * 1024**3)


def settings() -> Settings:
    """The current environment parsed into `Settings` (unset or empty variables take their defaults)."""
    values = {}
    for item in fields(Settings):
        raw = os.environ.get(item.metadata["env"], "")
        parsed = item.metadata["parse"](raw) if raw else None
        if parsed not in (None, ()):
            values[item.name] = parsed
    return Settings(**values)


def variables() -> list[tuple[str, str]]:
    """(variable, meaning) for every setting, in declaration order."""
    return [(item.metadata["env"], item.metadata["meaning"]) for item in fields(Settings)]
