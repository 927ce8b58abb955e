"""`python -m core`: predict, evaluate, audit-data, and the XAI commands (explain, xai-eval) from core.xai_cli.

User errors print one line `error: ...` and exit non-zero; they never show a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from core.errors import BrainScanError


def progress_printer(label: str) -> Callable[[int, int], None]:
    """A throttled one-line progress indicator on stderr (only when it is a terminal or every 10%)."""
    state = {"last": 0.0}

    def show(done: int, total: int) -> None:
        now = time.time()
        if done == total or now - state["last"] > 1.0:
            state["last"] = now
            end = "\n" if done == total else ""
            sys.stderr.write(f"\r{label}: {done}/{total} ({100 * done / max(total, 1):.0f}%)" + end)
            sys.stderr.flush()

    return show


def _model_arg(p: argparse.ArgumentParser) -> None:
    from core.model import default_model_dir

    p.add_argument("--model", default=str(default_model_dir()), help="model folder (model.keras + model_card.json)")


def _data_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    env = os.environ.get("BRAINSCAN_DATA")
    p.add_argument("--data", default=env, required=required and env is None,
                   help="dataset root with Training/ and Testing/ (or BRAINSCAN_DATA)")


def cmd_predict(args: argparse.Namespace) -> int:
    from core.model import load_model
    from core.predict import classify

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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation import headline
    from core.model import load_model
    from core.model_eval import evaluate_loaded_model

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
                          for part in ("validation", "test", "test_leakage_free")}, indent=2))
    else:
        print(f"{'split':<20}{'n':>6}{'accuracy':>10}{'loss':>8}{'macroF1':>9}{'kappa':>8}{'AUC':>8}")
        for part in ("validation", "test", "test_leakage_free"):
            r = results[part]
            print(f"{part:<20}{r['n']:>6}{r['accuracy']:>10.4f}{r['loss']:>8.4f}{r['macro_f1']:>9.4f}"
                  f"{r['cohen_kappa']:>8.4f}{r['macro_auc']:>8.4f}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from core.audit import audit, write_report
    from core.data import discover

    report = audit(discover(args.dir), args.threshold, progress=progress_printer("hashing"))
    out = write_report(report, Path(args.out))
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'class':<12}{'test':>6}{'exact':>7}{'near':>6}{'free':>6}")
        for name, row in {**summary["per_class"], "TOTAL": summary["total"]}.items():
            print(f"{name:<12}{row['test']:>6}{row['exact']:>7}{row['near_only']:>6}{row['leakage_free']:>6}")
        print(f"leakage-free test list: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from core.audit import NEAR_THRESHOLD

    parser = argparse.ArgumentParser(prog="python -m core", description="BrainScan XAI engine")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="classify scans; one JSON object per file with --json")
    p.add_argument("files", nargs="+")
    _model_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="metrics on validation, test and leakage-free test")
    _data_arg(p)
    _model_arg(p)
    p.add_argument("--protocol", default="default", choices=("default", "spec"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--save", action="store_true", help="store the results in the model card")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("audit-data", help="find test images duplicated in Training; write the leakage-free list")
    p.add_argument("dir")
    p.add_argument("--out", default="artifacts/audit", help="folder for leakage_free_test.txt and the JSON report")
    p.add_argument("--threshold", type=float, default=NEAR_THRESHOLD, help="thumbnail correlation for a near duplicate")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)

    from core import xai_cli

    xai_cli.add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.quiet import import_tensorflow_quietly

    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
    try:
        return args.func(args)
    except BrainScanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
