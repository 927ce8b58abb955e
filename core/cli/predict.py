"""`python -m core predict`: classify files, one line (or one JSON object) per file.

With a fitted model folder (`python -m core calibrate`) every answer passes the input gate and carries the
calibrated confidence and the conformal prediction set; a refusal is an answer (exit 0), an unreadable file an
error (exit 1)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli.common import model_arg
from core.errors import BrainScanError


def cmd_predict(args: argparse.Namespace) -> int:
    from core.model.factory import load_model
    from core.model.inference import classify
    from core.model.trust import NOT_CALIBRATED, load_trust

    model, card = load_model(args.model)
    trust = load_trust(args.model, card.class_names)
    if trust is None:
        print(f"note: {NOT_CALIBRATED}", file=sys.stderr)
    failures = 0
    for file in args.files:
        try:
            result = classify(model, card, Path(file), name=file, trust=trust)
        except BrainScanError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(result.to_dict()))
        elif result.refused:
            print(f"{file}: refused - {result.refusal}")
        else:
            probs = "  ".join(f"{k} {v:.3f}" for k, v in result.probabilities.items())
            members = "" if result.prediction_set is None else f"  set {{{', '.join(result.prediction_set)}}}"
            print(f"{file}: {result.headline} [{result.state.value}] (most probable {result.predicted} "
                  f"{result.confidence:.1%}){members}  [{probs}]")
    return 1 if failures else 0


def add_subcommands(sub: Any) -> None:
    """Register `predict`."""
    p = sub.add_parser("predict", help="classify scans; one JSON object per file with --json")
    p.add_argument("files", nargs="+")
    model_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)
