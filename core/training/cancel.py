"""Cancelling a run: SIGTERM/SIGINT or a CANCEL file in the run folder (the app's Cancel button) stop it at the
next batch end, or between the steps that read the data before training starts."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from core.training import run_files as rf


class Cancelled(Exception):
    """Raised at the first batch end after a cancel: leaves `model.fit` at once, so the rest of the epoch and its
    validation are skipped (Keras' stop_training would still validate the epoch). The unfinished epoch is
    discarded: the last checkpoint holds the last completed one, where a resume continues. Also raised between
    the data steps before training, when nothing has been trained."""


class Cancel:
    """Set by SIGTERM/SIGINT or by a CANCEL file in the run folder."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.flag = False

    def __call__(self, *_: Any) -> None:
        self.flag = True

    def requested(self) -> bool:
        """Whether a signal arrived or the CANCEL file exists."""
        return self.flag or (self.run_dir / rf.CANCEL_FILE).exists()

    def check(self) -> None:
        """Raise Cancelled if a cancel was requested (between steps that take long)."""
        if self.requested():
            raise Cancelled


def listen(run_dir: Path) -> Cancel:
    """A cancel flag for `run_dir`, set by SIGTERM and SIGINT where this thread may install signal handlers."""
    cancel = Cancel(run_dir)
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, cancel)
        except ValueError:  # not the main thread (e.g. a test or an embedding app): the CANCEL file still works
            pass
    return cancel
