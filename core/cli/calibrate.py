"""`python -m core calibrate`: fit a model folder's input gate, temperature and conformal sets (trust.json/.npz)."""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from core.cli.common import data_arg, model_arg, progress_printer, split_args


def cmd_calibrate(args: argparse.Namespace) -> int:
    from core.evaluation.trust_fit import fit_trust
    from core.model.factory import load_model
    from core.model.gate.scores import SCORES

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    unknown = [s for s in args.scores or [] if s not in SCORES]
    if unknown:
        from core.errors import TrainingConfigError

        raise TrainingConfigError(f"unknown gate score(s) {unknown}; choose from {', '.join(SCORES)}")
    model, card = load_model(args.model)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bars.setdefault(stage, progress_printer(stage))(done, total)

    command = "python -m core " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    trust = fit_trust(model, card, args.data, Path(args.model), args.protocol, args.seed, args.val_fraction,
                      args.confidence, args.per_class, args.per_family, args.scores, command=command,
                      progress=progress, features_cache=args.features_cache)
    config = trust.config
    print(f"gate score: {config.gate_score} (threshold {config.gate_threshold:.4g}); "
          f"temperature {config.temperature:.3f}; conformal confidence {config.confidence:.0%}")
    print(f"{'score':<20}{'mean refused':>14}{'min refused':>13}{'mean AUROC':>12}")
    for name, row in config.report["gate_selection"].items():
        print(f"{name:<20}{row['mean_refused']:>14.3f}{row['min_refused']:>13.3f}{row['mean_auroc']:>12.4f}")
    before, after = (config.report["validation_calibration"][k] for k in ("before", "after"))
    print(f"validation ECE {before['ece']:.4f} -> {after['ece']:.4f}, NLL {before['nll']:.4f} -> {after['nll']:.4f}, "
          f"Brier {before['brier']:.4f} -> {after['brier']:.4f}")
    print(f"written: {Path(args.model) / 'trust.json'} and trust.npz")
    return 0


def add_subcommands(sub: Any) -> None:
    """Register `calibrate`."""
    p = sub.add_parser("calibrate", help="fit the input gate, temperature and conformal sets into the model folder")
    data_arg(p)
    model_arg(p)
    split_args(p)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--confidence", type=float, default=0.95, help="conformal coverage per class (default 0.95)")
    p.add_argument("--per-class", type=int, default=300, help="training scans per class the gate is fitted on")
    p.add_argument("--per-family", type=int, default=250, help="self-built negatives per family")
    p.add_argument("--scores", nargs="+", default=None, help="gate scores to measure (default: all registered)")
    p.add_argument("--features-cache", default=None,
                   help="an .npz to save the computed features to, or to read them from when it exists (re-running "
                        "the selection on the same model and data in seconds)")
    p.set_defaults(func=cmd_calibrate)
