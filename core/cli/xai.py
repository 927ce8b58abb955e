"""`python -m core explain` (one scan) and `python -m core xai-eval` (quantitative evaluation)."""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from core.cli.common import data_arg, model_arg, progress_printer
from core.errors import ExplainError
from core.settings import settings

OUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


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
    import numpy as np

    from core.io.images import preprocess, read_image
    from core.model.factory import load_model
    from core.xai.explainers import explain, folder_options, get_spec
    from core.xai.overlays import overlay_for, side_by_side

    get_spec(args.method)
    files = list(args.files)
    if args.out and len(files) > 1:
        raise ExplainError("--out writes one overlay; with several files use --save-maps DIR")
    stems = [Path(f).stem for f in files]
    if args.save_maps and len(set(stems)) < len(stems):
        raise ExplainError("--save-maps names each map after its file; two files share a name stem")
    if args.out:
        _check_out(Path(args.out))
    save_dir = Path(args.save_maps) if args.save_maps else None
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    model, card = load_model(args.model)
    class_index = _resolve_class(args.class_name, card.class_names)
    options = folder_options(args.method, args.model, card.image_size)
    for file, stem in zip(files, stems):
        rgb = read_image(Path(file), file)
        image = preprocess(rgb, card.image_size, card.crop)
        result = explain(model, image, args.method, class_index, card, **options)
        saved = None
        if save_dir is not None:
            saved = str(save_dir / f"{stem}.npy")
            np.save(saved, np.asarray(result.map, np.float32))
        if args.out:
            picture = side_by_side(image.astype("uint8"), overlay_for(result, image.astype("uint8")))
            try:
                written = cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            except cv2.error as exc:
                raise ExplainError(f"cannot write {args.out} ({str(exc).strip().splitlines()[-1]})") from exc
            if not written:
                raise ExplainError(f"cannot write {args.out} (use a .png path in an existing, writable folder)")
        summary = {"file": file, "method": result.method, "class_index": result.class_index,
                   "class_name": card.class_names[result.class_index], "seconds": round(result.seconds, 3),
                   "signed": result.signed, "map": result.stats(), "note": result.note, "out": args.out}
        if save_dir is not None:
            summary["map_file"] = saved
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"{file}: {result.method} for {summary['class_name']} in {result.seconds:.2f} s; "
                  f"{result.note}" + (f"; overlay: {args.out}" if args.out else "")
                  + (f"; map: {saved}" if saved else ""))
    return 0


def _check_out(out: Path) -> None:
    """Refuse an --out path that cannot hold the overlay picture, before the explanation is computed."""
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise ExplainError(f"--out {out}: the overlay is an image; give a file name ending in "
                           f"{' or '.join(sorted(OUT_SUFFIXES))} (e.g. {out.with_suffix('.png').name})")
    if not out.parent.is_dir():
        raise ExplainError(f"--out {out}: the folder {out.parent} does not exist")


def cmd_xai_eval(args: argparse.Namespace) -> int:
    from core.data.discovery import discover_for_model
    from core.model.factory import load_model
    from core.xai.evaluation import run_eval, save_results
    from core.xai.explainers import needs_background
    from core.xai.explainers.background import ensure_background

    if args.data is None:
        raise ExplainError("xai-eval needs --data DIR (or BRAINSCAN_DATA)")
    if args.localisation:
        return _localisation(args)
    quick = args.quick or settings().quick
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    model, card = load_model(args.model)
    discover_for_model(args.data, card.class_names)
    background = (ensure_background(args.model, args.data, card.image_size, args.seed, card.crop)
                  if needs_background(methods) else None)
    start = time.perf_counter()
    results = run_eval(model, card, args.data, args.n, methods, args.seed, args.sanity_n, quick, background,
                       progress=progress_printer("explaining"), select_progress=progress_printer("loading"),
                       scorer=_ray_scorer(args, "xai_eval"))
    results["command"] = (f"python -m core xai-eval --data {shlex.quote(str(args.data))} --model "
                          f"{shlex.quote(str(args.model))} --n {args.n} --methods {','.join(methods)} --seed {args.seed} "
                          f"--sanity-n {args.sanity_n}" + (" --quick" if quick else "") + _ray_flags(args))
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


def _localisation(args: argparse.Namespace) -> int:
    from core.data.discovery import discover_for_model
    from core.data.masks import default_masks_dir, load_mask_index
    from core.model.factory import load_model
    from core.xai.explainers import needs_background
    from core.xai.explainers.background import ensure_background
    from core.xai.localisation import run_localisation, save_localisation

    masks_dir = args.masks or default_masks_dir(args.data)
    if masks_dir is None:
        raise ExplainError("--localisation needs the expert masks: --masks DIR (or BRAINSCAN_MASKS, or "
                           "brain-tumor-mri-masks beside the data folder)")
    masks = load_mask_index(masks_dir)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    model, card = load_model(args.model)
    discover_for_model(args.data, card.class_names)
    background = (ensure_background(args.model, args.data, card.image_size, args.seed, card.crop)
                  if needs_background(methods) else None)
    results = run_localisation(model, card, args.data, masks, args.n, methods, args.split, args.seed,
                               not args.no_road, background, progress=progress_printer("explaining"),
                               checkpoint_dir=args.checkpoint_dir, budget_minutes=args.budget_minutes,
                               scorer=_ray_scorer(args, "localisation"))
    results["command"] = (f"python -m core xai-eval --localisation --data {shlex.quote(str(args.data))} --masks "
                          f"{shlex.quote(str(masks_dir))} --model {shlex.quote(str(args.model))} --n {args.n} "
                          f"--methods {','.join(methods)} --split {args.split} --seed {args.seed}"
                          + (" --no-road" if args.no_road else "")
                          + (f" --budget-minutes {args.budget_minutes:g}" if args.budget_minutes else "")
                          + _ray_flags(args))
    path = save_localisation(args.model, results) if args.split == "Testing" else None
    if args.json:
        print(json.dumps({k: v for k, v in results.items() if k != "records"}, indent=2))
        return 0
    for subset, block in results["summary"].items():
        print(f"\n{subset}: {block['n']} scans {block['per_class_n']}")
        names = [m for m in results["metrics"]]
        print(f"{'map':<10}{'class':<12}" + "".join(f"{n[:18]:>24}" for n in names))
        for name, row in block["maps"].items():
            for cls in ["all", *block["per_class_n"]]:
                cells = "".join(f"{_fmt(row[n][cls]) if n in row else '':>24}" for n in names)
                print(f"{name:<10}{cls:<12}{cells}")
    print(f"{results['n_images']} scans in {results['wall_seconds']} s wall, {results['cpu_seconds']} s CPU"
          + (f"; saved {path}" if path else ""))
    return 0


def _ray_scorer(args: argparse.Namespace, kind: str) -> Any:
    """The Ray fan-out of the per-scan scoring when --address or --workers asks for it (None: in this process)."""
    if not (args.address or args.workers):
        return None
    if args.workers is not None and args.workers < 1:
        raise ExplainError(f"--workers must be 0 (in this process) or more, got {args.workers}")
    if kind == "localisation":
        from core.batch.localisation import ray_scorer

        return ray_scorer(str(args.model), args.address, args.workers)
    from core.batch.xai_eval import ray_image_scorer

    return ray_image_scorer(str(args.model), args.address, args.workers)


def _ray_flags(args: argparse.Namespace) -> str:
    """The Ray options as they go into the recorded command."""
    return (f" --address {args.address}" if args.address else "") + (f" --workers {args.workers}" if args.workers
                                                                      else "")


def _fmt(cell: dict[str, Any]) -> str:
    if cell["mean"] is None:
        return "n/a"
    if cell.get("n", 2) < 2:
        return f"{cell['mean']:.3f}"
    lo, hi = cell["ci95"]
    return f"{cell['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def add_subcommands(sub: Any) -> None:
    """Register `explain` and `xai-eval` on the `python -m core` subparsers."""
    from core.xai.explainers import EXPLAINERS

    p = sub.add_parser("explain", help="explain scans (Score-CAM, SHAP or LIME); PNG overlay with --out, "
                                       "raw maps with --save-maps")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--method", default="scorecam", help=f"one of {', '.join(EXPLAINERS)}")
    p.add_argument("--class", dest="class_name", help="class to explain (name or index; default: predicted)")
    model_arg(p)
    p.add_argument("--out", help="PNG path: scan and overlay side by side (one file only)")
    p.add_argument("--save-maps", metavar="DIR", help="write each raw map as DIR/<file stem>.npy: float32 at the "
                   "model's input resolution, the scan's orientation, positive = evidence for the explained class")
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
    p.add_argument("--localisation", action="store_true",
                   help="instead: localisation against expert masks (energy inside the mask, pointing game, rank "
                        "accuracy) and ROAD on --n tumour scans with masks, true class explained; writes "
                        "xai_localisation.json by the model")
    p.add_argument("--masks", help="expert masks folder (index.csv); default BRAINSCAN_MASKS or "
                   "brain-tumor-mri-masks beside --data")
    p.add_argument("--split", default="Testing", choices=["Testing", "Training"],
                   help="with --localisation: Training = the model's validation split (for choosing options; "
                        "not saved)")
    p.add_argument("--no-road", action="store_true", help="with --localisation: skip ROAD")
    p.add_argument("--budget-minutes", type=float, help="with --localisation: start no new scan after this many "
                   "minutes (the report says how many scans were done)")
    p.add_argument("--checkpoint-dir", help="with --localisation: keep per-scan records there (JSON lines) and "
                   "continue an interrupted run with the same settings")
    p.add_argument("--address", help="run the scans on this Ray cluster (see `batch`)")
    p.add_argument("--workers", type=int, help="Ray workers (model replicas) on a local Ray, or on --address; the "
                   "scores are those of the in-process run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_xai_eval)
