"""Choose explainer options by localisation on TRAINING masks (the model's validation split), never on Testing.

    python benchmarks/xai_select.py [--model DIR] [--data DIR] [--masks DIR] [--n 30] [--out JSON] [--defaults-only]

Scans: a seeded sample of tumour scans of the model's validation split that have expert masks (scans the
model did not train on; Testing masks are kept for the evaluation). Each variant explains the true class;
the energy inside the mask, the pointing-game hit and the rank accuracy are averaged per class. Variants
that are post-processing of one map (SHAP smoothing, the fusion of two Score-CAM maps) reuse that map.
`--defaults-only` runs the app's map options (and Score-CAM on the last feature map) alone: it compares models.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from core.training.launcher import default_data_dir  # noqa: E402
from core.xai.evaluation import mean_ci  # noqa: E402
from core.xai.explainers import explain, warm_up  # noqa: E402
from core.xai.explainers.base import normalise01  # noqa: E402
from core.xai.explainers.shap_method import smooth  # noqa: E402
from core.xai.metrics import LOCALISATION, gaussian_map, localise_map  # noqa: E402

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "scorecam last": ("scorecam", {"resolution": 1}),
    "scorecam resolution 2": ("scorecam", {"resolution": 2}),
    "scorecam resolution 4 (default)": ("scorecam", {"resolution": 4}),
    "lime all superpixels, mean (lime's way)": ("lime", {"head_only": False, "hide": "mean"}),
    "lime head, blur (default)": ("lime", {"head_only": True, "hide": "blur"}),
    "shap raw 200": ("shap", {"smooth_sigma": 0.0}),
    "shap raw 200, seed 1": ("shap", {"smooth_sigma": 0.0, "seed": 1}),
    "shap raw 100": ("shap", {"smooth_sigma": 0.0, "nsamples": 100}),
    "shap raw 50": ("shap", {"smooth_sigma": 0.0, "nsamples": 50}),
}
DERIVED = {
    "scorecam 4 x 2 (product)": lambda maps: normalise01(np.sqrt(maps["scorecam resolution 4 (default)"] *
                                                                 maps["scorecam resolution 2"])),
    "shap smoothed 4 px": lambda maps: smooth(maps["shap raw 200"], 4.0),
    "shap 200 smoothed 8 px (default)": lambda maps: smooth(maps["shap raw 200"], 8.0),
    "shap 200 seed 1 smoothed 8 px": lambda maps: smooth(maps["shap raw 200, seed 1"], 8.0),
    "shap 100 smoothed 8 px": lambda maps: smooth(maps["shap raw 100"], 8.0),
    "shap 50 smoothed 8 px": lambda maps: smooth(maps["shap raw 50"], 8.0),
}
# Sample-count stability: each SHAP map against the 200-sample map drawn with another seed (Spearman over pixels);
# the 200-sample map of seed 0 against it is the noise floor a cheaper map has to stay close to.
STABILITY = {name: "shap 200 seed 1 smoothed 8 px" for name in
             ("shap 200 smoothed 8 px (default)", "shap 100 smoothed 8 px", "shap 50 smoothed 8 px")}
DEFAULTS = ("scorecam last", "scorecam resolution 4 (default)", "lime head, blur (default)", "shap raw 100",
            "shap 100 smoothed 8 px")


def main() -> None:
    from core.data.masks import default_masks_dir, load_mask_index
    from core.model.factory import default_model_dir, load_model
    from core.xai.explainers import folder_options
    from core.xai.localisation import load_scans, select_rows, validation_files

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--masks", default=None)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/xai_select.json")
    parser.add_argument("--defaults-only", action="store_true", help="only the app's map options (compare models)")
    args = parser.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if not args.defaults_only or k in DEFAULTS}
    derived = {k: v for k, v in DERIVED.items() if not args.defaults_only or k in DEFAULTS}
    stable = {} if args.defaults_only else STABILITY
    model, card = load_model(args.model)
    masks = load_mask_index(args.masks or default_masks_dir(args.data))
    allowed = validation_files(card, args.data)
    rows = select_rows(masks, card.class_names, "Training", args.n, args.seed, allowed)
    scans = load_scans(masks, rows, args.data, card.class_names, card.image_size, card.crop)
    by_class = [[s for s in scans if s.label == k] for k in sorted({s.label for s in scans})]
    scans = [s for group in zip(*by_class) for s in group]   # classes interleaved: a partial run stays balanced
    warm_up(model)
    shap_options = folder_options("shap", args.model, card.image_size)
    values: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, list[float]] = {}
    stability: dict[str, list[float]] = {}
    classes = [s.row.class_name for s in scans]
    start = time.perf_counter()
    for i, scan in enumerate(scans):
        maps = {}
        for name, (method, options) in variants.items():
            opts = {**(shap_options if method == "shap" else {}), **options}
            result = explain(model, scan.image, method, scan.label, **opts)
            maps[name] = result.map
            seconds.setdefault(name, []).append(result.seconds)
        for name, make in derived.items():
            maps[name] = make(maps)
        maps["centred Gaussian (floor)"] = gaussian_map(card.image_size)
        maps["uniform (= mask area)"] = np.ones_like(scan.mask, np.float32)
        for name, saliency in maps.items():
            values.setdefault(name, []).append(localise_map(saliency, scan.mask))
        for name, reference in stable.items():
            stability.setdefault(name, []).append(float(spearmanr(maps[name].ravel(), maps[reference].ravel())[0]))
        print(f"{i + 1}/{len(scans)} {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        report(values, seconds, stability, classes[:i + 1], card, scans[:i + 1], args)


def report(values: dict[str, list[dict[str, float]]], seconds: dict[str, list[float]],
           stability: dict[str, list[float]], classes: list[str], card: Any, scans: list[Any],
           args: argparse.Namespace) -> None:
    """Write the summary so far (the JSON is rewritten after every scan) and print the table."""
    summary = {}
    for name, rows_ in values.items():
        summary[name] = {metric: {"all": mean_ci([r[metric] for r in rows_])["mean"],
                                  **{c: mean_ci([r[metric] for r, k in zip(rows_, classes) if k == c])["mean"]
                                     for c in sorted(set(classes))}} for metric in LOCALISATION}
        if name in seconds:
            summary[name]["seconds"] = float(np.mean(seconds[name]))
    doc = {"model": card.name, "split": "Training (the model's validation split)", "n": len(scans),
           "files": [s.row.file for s in scans], "summary": summary,
           "stability": {name: {"reference": STABILITY[name], **mean_ci(v)} for name, v in stability.items()},
           "command": "python benchmarks/xai_select.py " + " ".join(sys.argv[1:])}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'variant':<36}" + "".join(f"{m[:14]:>16}" for m in LOCALISATION) + "   per class energy")
    for name, row in summary.items():
        per = " ".join(f"{c[:4]} {row['energy_pointing'][c]:.3f}" for c in sorted(set(classes)))
        print(f"{name:<36}" + "".join(f"{row[m]['all']:16.3f}" for m in LOCALISATION)
              + f"   {per}  {row.get('seconds', 0):.2f} s")
    for name, v in stability.items():
        print(f"Spearman {name} vs {STABILITY[name]}: {np.mean(v):.3f}")


if __name__ == "__main__":
    main()
