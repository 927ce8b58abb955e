"""`python -m core explain` (one scan) and `python -m core xai-eval` (quantitative evaluation)."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

from core.cli.common import data_arg, model_arg, progress_printer
from core.errors import ExplainError


def _resolve_class(value: str | None, class_names: list[str]) -> int | None:
    if value is None:
        return None
    if value in class_names:
        return class_names.index(value)
    if value.isdigit() and int(value) < len(class_names):
        return int(value)
    raise ExplainError(f"--class must be one of {class_names} or an index 0-{len(class_names) - 1}, got {value!r}")


def cmd_explain(args: argparse.Namespace) -> int:
    import cv2

    from core.io.images import preprocess, read_image
    from core.model.factory import load_model
    from core.xai.explainers import explain, get_spec
    from core.xai.explainers.background import folder_options
    from core.xai.overlays import overlay_for, side_by_side

    get_spec(args.method)
    model, card = load_model(args.model)
    rgb = read_image(Path(args.file), args.file)
    image = preprocess(rgb, card.image_size)
    result = explain(model, image, args.method, _resolve_class(args.class_name, card.class_names), card,
                     **folder_options(args.method, args.model, card.image_size))
    if args.out:
        picture = side_by_side(image.astype("uint8"), overlay_for(result, image.astype("uint8")))
        if not cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
            raise ExplainError(f"cannot write {args.out} (use a .png path in an existing folder)")
    summary = {"file": args.file, "method": result.method, "class_index": result.class_index,
               "class_name": card.class_names[result.class_index], "seconds": round(result.seconds, 3),
               "signed": result.signed, "map": result.stats(), "note": result.note, "out": args.out}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.file}: {result.method} for {summary['class_name']} in {result.seconds:.2f} s; "
              f"{result.note}" + (f"; overlay: {args.out}" if args.out else ""))
    return 0


def cmd_xai_eval(args: argparse.Namespace) -> int:
    from core.data.discovery import discover_for_model
    from core.model.factory import load_model
    from core.xai.evaluation import run_eval, save_results
    from core.xai.explainers.background import ensure_background

    if args.data is None:
        raise ExplainError("xai-eval needs --data DIR (or BRAINSCAN_DATA)")
    quick = args.quick or os.environ.get("BRAINSCAN_QUICK") == "1"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    model, card = load_model(args.model)
    discover_for_model(args.data, card.class_names)
    background = ensure_background(args.model, args.data, card.image_size, args.seed) if "shap" in methods else None
    start = time.perf_counter()
    results = run_eval(model, card, args.data, args.n, methods, args.seed, args.sanity_n, quick, background,
                       progress=progress_printer("explaining"), select_progress=progress_printer("loading"))
    results["command"] = (f"python -m core xai-eval --data {shlex.quote(str(args.data))} --model "
                          f"{shlex.quote(str(args.model))} --n {args.n} --methods {','.join(methods)} --seed {args.seed} "
                          f"--sanity-n {args.sanity_n}" + (" --quick" if quick else ""))
    results["settings"]["wall_seconds"] = round(time.perf_counter() - start, 1)
    path = save_results(args.model, results)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    names = ["deletion_auc", "insertion_auc", "faithfulness_correlation"]
    print(f"{'method':<12}" + "".join(f"{n:>26}" for n in names) + f"{'sanity':>8}{'s/img':>7}")
    for name, row in results["methods"].items():
        cells = "".join(f"{_fmt(row[n]):>26}" for n in names)
        sanity = row.get("sanity_rank_correlation", {}).get("mean")
        print(f"{name:<12}{cells}{'' if sanity is None else f'{sanity:8.3f}':>8}{row['seconds_per_image']['mean']:7.2f}")
    print(f"{results['n_images']} images in {results['settings']['wall_seconds']} s; saved {path}")
    return 0


def _fmt(cell: dict[str, Any]) -> str:
    if cell["mean"] is None:
        return "n/a"
    lo, hi = cell["ci95"]
    return f"{cell['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def add_subcommands(sub: Any) -> None:
    """Register `explain` and `xai-eval` on the `python -m core` subparsers."""
    from core.xai.explainers import EXPLAINERS

    p = sub.add_parser("explain", help="explain one scan (Score-CAM, SHAP or LIME); PNG overlay with --out")
    p.add_argument("file")
    p.add_argument("--method", default="scorecam", help=f"one of {', '.join(EXPLAINERS)}")
    p.add_argument("--class", dest="class_name", help="class to explain (name or index; default: predicted)")
    model_arg(p)
    p.add_argument("--out", help="PNG path: scan and overlay side by side")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("xai-eval", help="deletion/insertion AUC, faithfulness, sanity check of every method")
    data_arg(p, required=False)
    model_arg(p)
    p.add_argument("--n", type=int, default=100, help="number of test scans (stratified by class)")
    p.add_argument("--methods", default=",".join(EXPLAINERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sanity-n", type=int, default=10, help="images for the model-randomisation check")
    p.add_argument("--quick", action="store_true", help="coarser metrics: 10 deletion/insertion steps, "
                   "20 faithfulness subsets "
                   "(also BRAINSCAN_QUICK=1); the explainers keep their defaults")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_xai_eval)
