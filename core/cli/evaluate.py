"""`python -m core evaluate`: metrics of a model on validation, test and the leakage-free test subset."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.cli.common import data_arg, model_arg, progress_printer

PARTS = ("validation", "test", "test_leakage_free")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation.evaluate import evaluate_loaded_model
    from core.evaluation.metrics import headline
    from core.model.factory import load_model

    model, card = load_model(args.model)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bars.setdefault(stage, progress_printer(stage))(done, total)

    results = evaluate_loaded_model(model, card, args.data, args.protocol, args.seed, progress=progress)
    if args.save:
        card.evaluation = results
        card.save(Path(args.model))
    if args.json:
        print(json.dumps({part: {**headline(results[part]), "n": results[part]["n"],
                                 "accuracy_ci95": results[part]["accuracy_ci95"],
                                 "macro_f1_ci95": results[part]["macro_f1_ci95"]}
                          for part in PARTS}, indent=2))
    else:
        print(f"{'split':<20}{'n':>6}{'accuracy':>10}{'loss':>8}{'macroF1':>9}{'kappa':>8}{'AUC':>8}")
        for part in PARTS:
            r = results[part]
            print(f"{part:<20}{r['n']:>6}{r['accuracy']:>10.4f}{r['loss']:>8.4f}{r['macro_f1']:>9.4f}"
                  f"{r['cohen_kappa']:>8.4f}{r['macro_auc']:>8.4f}")
    return 0


def add_subcommands(sub: Any) -> None:
    """Register `evaluate`."""
    p = sub.add_parser("evaluate", help="metrics on validation, test and leakage-free test")
    data_arg(p)
    model_arg(p)
    p.add_argument("--protocol", default="default", choices=("default", "spec"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--save", action="store_true", help="store the results in the model card")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)
