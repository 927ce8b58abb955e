"""`python -m core evaluate`: metrics of a model on validation, test and the leakage-free test subset."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli.common import data_arg, model_arg, progress_printer, split_args

PARTS = ("validation", "test", "test_unseen", "test_leakage_free")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation.evaluate import evaluate_loaded_model
    from core.evaluation.metrics import headline
    from core.model.factory import load_model
    from core.model.trust import NOT_CALIBRATED, load_trust

    model, card = load_model(args.model)
    trust = load_trust(args.model, card.class_names)
    if trust is None:
        print(f"note: {NOT_CALIBRATED}", file=sys.stderr)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bars.setdefault(stage, progress_printer(stage))(done, total)

    results = evaluate_loaded_model(model, card, args.data, args.protocol, args.seed, progress=progress, trust=trust,
                                    external=args.external)
    if args.save:
        kept = {"external": card.evaluation["external"]} if card.evaluation.get("external") else {}
        card.evaluation = {**results, **kept}  # evaluate-external's results are its own to replace
        card.save(Path(args.model))
    if args.json:
        summary = {part: {**headline(results[part]), "n": results[part]["n"],
                          "accuracy_ci95": results[part]["accuracy_ci95"],
                          "macro_f1_ci95": results[part]["macro_f1_ci95"]} for part in PARTS}
        if "trust" in results:
            summary["trust"] = trust_summary(results["trust"])
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'split':<20}{'n':>6}{'accuracy':>10}{'loss':>8}{'macroF1':>9}{'kappa':>8}{'AUC':>8}")
        for part in PARTS:
            r = results[part]
            print(f"{part:<20}{r['n']:>6}{r['accuracy']:>10.4f}{r['loss']:>8.4f}{r['macro_f1']:>9.4f}"
                  f"{r['cohen_kappa']:>8.4f}{r['macro_auc']:>8.4f}")
        if "trust" in results:
            print_trust(results["trust"])
    return 0


def _ci(ci: Any) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def trust_summary(trust: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of the trust report (the card keeps everything)."""
    out: dict[str, Any] = {"gate_score": trust["gate_score"], "temperature": trust["temperature"],
                           "test_false_refusal": {k: trust["test_false_refusal"][k] for k in ("rate", "rate_ci95")}}
    for part in ("test", "test_leakage_free"):
        if part in trust:
            t = trust[part]
            out[part] = {f"{m}_{when}": t[f"calibration_{when}"][m] for m in ("ece", "nll", "brier")
                         for when in ("before", "after")}
            out[part].update({k: t["conformal"][k] for k in ("coverage", "mean_set_size", "single_share",
                                                              "single_accuracy", "single_accuracy_ci95")})
            out[part]["coverage_per_class"] = {c: v["coverage"] for c, v in t["conformal"]["per_class"].items()}
    for name, entry in trust.get("external", {}).items():
        out.setdefault("external", {})[name] = {k: entry.get(k) for k in ("n", "refused", "refused_ci95", "auroc",
                                                                          "auroc_ci95", "fpr_at_95tpr")}
    return out


def print_trust(trust: dict[str, Any]) -> None:
    """Calibration, conformal sets and the gate as text."""
    f = trust["test_false_refusal"]
    print(f"\ninput gate: {trust['gate_score']} (threshold {trust['gate_threshold']:.4g}); refuses {f['refused']}/{f['n']} "
          f"of the test split ({f['rate']:.2%} {_ci(f['rate_ci95'])}); temperature {trust['temperature']:.3f}")
    print(f"{'split':<20}{'ECE before':>11}{'after':>8}{'NLL before':>11}{'after':>8}{'Brier before':>13}{'after':>8}"
          f"{'coverage':>10}{'set size':>9}{'single':>8}{'single acc':>11}")
    for part in ("test", "test_leakage_free"):
        if part not in trust:
            continue
        b, a, c = trust[part]["calibration_before"], trust[part]["calibration_after"], trust[part]["conformal"]
        print(f"{part:<20}{b['ece']:>11.4f}{a['ece']:>8.4f}{b['nll']:>11.4f}{a['nll']:>8.4f}{b['brier']:>13.4f}"
              f"{a['brier']:>8.4f}{c['coverage']:>10.4f}{c['mean_set_size']:>9.3f}{c['single_share']:>8.3f}"
              f"{c['single_accuracy']:>11.4f}")
    per_class = trust["test"]["conformal"]["per_class"]
    print("coverage per class (test): " + ", ".join(f"{k} {v['coverage']:.3f} {_ci(v['coverage_ci95'])}"
                                                    for k, v in per_class.items()))
    for name, e in trust.get("external", {}).items():
        nan = float("nan")
        print(f"external {name:<34} n {e['n']:>4}  refused {e['refused']:.3f} {_ci(e['refused_ci95'])}  "
              f"AUROC {e.get('auroc', nan):.4f} {_ci(e.get('auroc_ci95'))}  FPR@95TPR {e.get('fpr_at_95tpr', nan):.3f}")


def add_subcommands(sub: Any) -> None:
    """Register `evaluate`."""
    p = sub.add_parser("evaluate", help="metrics on validation, test, the strict unseen and the leakage-free test subsets")
    data_arg(p)
    model_arg(p)
    split_args(p)
    p.add_argument("--save", action="store_true", help="store the results in the model card")
    p.add_argument("--json", action="store_true")
    p.add_argument("--external", default=None,
                   help="a folder in the external-eval layout (labels.csv with file,label,..., or subfolders with "
                        "one): report the input gate's AUROC, FPR at 95%% TPR and refusals per set")
    p.set_defaults(func=cmd_evaluate)
    add_external_subcommand(sub)


def cmd_evaluate_external(args: argparse.Namespace) -> int:
    from core.evaluation.external import evaluate_external, headline_rows
    from core.model.factory import load_model

    model, card = load_model(args.model)
    bars: dict[str, Any] = {}

    def progress(name: str, done: int, total: int) -> None:
        bars.setdefault(name, progress_printer(name))(done, total)

    results = evaluate_external(model, card, args.dir, progress=progress)
    if args.save:
        card.evaluation["external"] = {name: {k: v for k, v in r.items() if k != "predictions"}
                                       for name, r in results.items()}
        card.save(Path(args.model))
    if args.json:
        print(json.dumps(results if args.per_file else {n: {k: v for k, v in r.items() if k != "predictions"}
                                                         for n, r in results.items()}, indent=2))
        return 0
    print(f"{'set':<44}{'n':>5}  {'tumour recall [95% CI]':<26}{'notumor specificity [95% CI]':<30}{'called notumor':>14}")
    for row in headline_rows(results):
        cells = []
        for key in ("tumour_recall", "notumor_specificity"):
            value = row[key]
            cells.append("" if value is None else f"{value['value']:.3f} [{value['ci95'][0]:.3f}, {value['ci95'][1]:.3f}]")
        called = "" if row["called_notumor"] is None else f"{row['called_notumor']:.3f}"
        print(f"{row['set']:<44}{row['n']:>5}  {cells[0]:<26}{cells[1]:<30}{called:>14}")
    return 0


def add_external_subcommand(sub: Any) -> None:
    """Register `evaluate-external`."""
    p = sub.add_parser("evaluate-external", help="tumour recall / notumor specificity on scans from other collections "
                       "(folders with labels.csv: file,label[,source,notes]); for reporting only")
    p.add_argument("dir", help="a set folder with labels.csv, or a root of such folders (e.g. external-eval/)")
    model_arg(p)
    p.add_argument("--save", action="store_true", help="store the summaries in the model card (evaluation.external)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--per-file", action="store_true", help="with --json: every file's prediction too")
    p.set_defaults(func=cmd_evaluate_external)
