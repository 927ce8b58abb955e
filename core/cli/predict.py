"""`python -m core predict`: classify files, one line (or one JSON object) per file."""
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

    model, card = load_model(args.model)
    failures = 0
    for file in args.files:
        try:
            result = classify(model, card, Path(file), name=file)
        except BrainScanError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(result.to_dict()))
        else:
            probs = "  ".join(f"{k} {v:.3f}" for k, v in result.probabilities.items())
            print(f"{file}: {result.predicted} ({result.confidence:.1%})  [{probs}]")
    return 1 if failures else 0


def add_subcommands(sub: Any) -> None:
    """Register `predict`."""
    p = sub.add_parser("predict", help="classify scans; one JSON object per file with --json")
    p.add_argument("files", nargs="+")
    model_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)
