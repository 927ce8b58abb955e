"""What every command group shares: progress on stderr and the --model / --data arguments."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from core.settings import settings


def progress_printer(label: str) -> Callable[[int, int], None]:
    """A throttled one-line progress indicator on stderr (at most once a second, and at the end)."""
    state = {"last": 0.0}

    def show(done: int, total: int) -> None:
        now = time.time()
        if done == total or now - state["last"] > 1.0:
            state["last"] = now
            end = "\n" if done == total else ""
            sys.stderr.write(f"\r{label}: {done}/{total} ({100 * done / max(total, 1):.0f}%)" + end)
            sys.stderr.flush()

    return show


def model_arg(p: argparse.ArgumentParser) -> None:
    """--model: a model folder, the bundled model by default."""
    from core.model.factory import default_model_dir

    p.add_argument("--model", default=str(default_model_dir()), help="model folder (model.keras + model_card.json)")


def data_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--data: the dataset root, BRAINSCAN_DATA by default."""
    env = settings().data
    p.add_argument("--data", default=None if env is None else str(env), required=required and env is None,
                   help="dataset root with Training/ and Testing/ (or BRAINSCAN_DATA)")


def split_args(p: argparse.ArgumentParser) -> None:
    """--protocol and --seed: which validation split (the card's by default) and its seed."""
    from core.data.discovery import PROTOCOLS

    p.add_argument("--protocol", default=None, choices=PROTOCOLS,
                   help="validation split (default: the one the model was trained with, from its card)")
    p.add_argument("--seed", type=int, default=42)
