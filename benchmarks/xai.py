"""Benchmark: our explainers against the reference implementations with their defaults.

    python benchmarks/xai.py [--model DIR] [--data DIR] [--images 12] [--sweep] [--quick] [--out JSON]

For each of some real test scans (one per class in turn) and each method, in the same run:
ours (registry defaults) vs the reference - tf-keras-vis `Scorecam` over all channels, `lime_image`
with its defaults (quickshift, batch 10, 1,000 samples), `shap.GradientExplainer` with its
defaults (200 samples, every class; DeepExplainer cannot run on EfficientNet, see
core/explain/shap_method.py) - timed warm (the model, one shap explainer each and the traced
functions are reused; ours through `core.xai.explainers.warm_up`, as in the app), with the insertion and
deletion AUC of every map, so that speed is never bought with fidelity. The summary gives the paired insertion-AUC difference
(ours minus reference) with its 95% t-interval and the number of scans where ours is at least as
good. `--sweep` measures the defaults' trade-offs: Score-CAM max_channels (time vs insertion
AUC), LIME num_samples and SHAP nsamples (time vs stability across seeds vs insertion AUC).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from core.model.inference import predict_proba  # noqa: E402
from core.xai.evaluation import mean_ci  # noqa: E402
from core.xai.explainers import explain, warm_up  # noqa: E402
from core.xai.explainers.base import normalise01  # noqa: E402
from core.xai.metrics import evaluate_map  # noqa: E402
from core.xai.metrics.sanity import rank_correlation  # noqa: E402

FIDELITY = ("deletion_auc", "insertion_auc")


def ref_scorecam(model: Any, image: np.ndarray, class_index: int, layer: str) -> np.ndarray:
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    cam = Scorecam(model, clone=False)(CategoricalScore([class_index]), image[None], penultimate_layer=layer)
    return np.asarray(cam[0], np.float32)


def ref_lime(model: Any, image: np.ndarray, class_index: int) -> np.ndarray:
    import contextlib
    import io

    from lime import lime_image

    with contextlib.redirect_stderr(io.StringIO()):
        result = lime_image.LimeImageExplainer(random_state=0).explain_instance(
            image.astype(np.float64), lambda batch: predict_proba(model, batch), labels=(class_index,),
            top_labels=None, random_seed=0)
    weights = dict(result.local_exp[class_index])
    signed = np.vectorize(lambda s: weights.get(s, 0.0))(result.segments).astype(np.float32)
    return normalise01(np.maximum(signed, 0))


def ref_shap(explainer: Any, image: np.ndarray, class_index: int) -> np.ndarray:
    values = explainer.shap_values(image[None], rseed=0)
    return np.asarray(values)[0, ..., class_index].sum(axis=-1).astype(np.float32)


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def fidelity(model: Any, image: np.ndarray, saliency: np.ndarray, class_index: int) -> dict[str, float]:
    scores = evaluate_map(model, image, saliency, class_index, metrics=FIDELITY)
    return {k: round(v.value, 4) for k, v in scores.items()}


def pick_images(data: Path, image_size: int, count: int) -> list[tuple[str, np.ndarray]]:
    from core.data.discovery import discover
    from core.io.images import load_for_model

    index = discover(data)
    by_class = [[s for s in index.splits["Testing"] if s.label == k] for k in range(len(index.class_names))]
    chosen = [by_class[i % len(by_class)][i // len(by_class) * 7] for i in range(count)]
    return [(s.relpath, load_for_model(s.path, image_size)) for s in chosen]


def compare(model: Any, card: Any, images: list, background: np.ndarray, quick: bool) -> list[dict[str, Any]]:
    import shap

    rows = []
    ours_opts = {"scorecam": {}, "shap": {"background": background}, "lime": {}}
    shap_reference = shap.GradientExplainer(model, background)
    refs = {"scorecam": lambda img, c: ref_scorecam(model, img, c, card.feature_layer),
            "shap": lambda img, c: ref_shap(shap_reference, img, c),
            "lime": lambda img, c: ref_lime(model, img, c)}
    warm_up(model)  # ours timed warm, as in the app (which warms up on model load)
    if not quick:
        for reference in refs.values():
            reference(images[0][1], 0)
    for name, image in images:
        c = int(predict_proba(model, image[None])[0].argmax())
        total = 0.0
        for method, ref in refs.items():
            result = explain(model, image, method, c, **ours_opts[method])
            total += result.seconds
            row = {"image": name, "method": method, "ours_s": round(result.seconds, 3),
                   "ours": fidelity(model, image, result.map, c)}
            if not quick:
                ref_map, ref_s = timed(lambda ref=ref, image=image, c=c: ref(image, c))
                row.update(ref_s=round(ref_s, 3), ref=fidelity(model, image, ref_map, c),
                           speedup=round(ref_s / result.seconds, 2))
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(json.dumps({"image": name, "all_three_s": round(total, 2)}), flush=True)
    return rows


def sweep(model: Any, images: list, background: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    grid = {"scorecam": ("max_channels", (32, 64, 128, 256, 512, 0)),
            "scorecam_weighting": ("weighting", ("score", "softmax", "cic")),
            "lime": ("num_samples", (100, 200, 400, 1000)),
            "shap": ("nsamples", (64, 128, 200))}
    out: dict[str, list[dict[str, Any]]] = {}
    for key, (option, values) in grid.items():
        method = key.split("_")[0]
        out[key] = []
        extra = {"background": background} if method == "shap" else {}
        for value in values:
            secs, ins, dele, stab = [], [], [], []
            for _, image in images:
                c = int(predict_proba(model, image[None])[0].argmax())
                a = explain(model, image, method, c, **{option: value}, **extra)
                secs.append(a.seconds)
                f = fidelity(model, image, a.map, c)
                ins.append(f["insertion_auc"])
                dele.append(f["deletion_auc"])
                if method != "scorecam":
                    b = explain(model, image, method, c, **{option: value, "seed": 1}, **extra)
                    stab.append(rank_correlation(a.map, b.map))
            row = {option: value, "seconds": round(float(np.mean(secs)), 3),
                   "insertion_auc": round(float(np.mean(ins)), 4), "deletion_auc": round(float(np.mean(dele)), 4)}
            if stab:
                row["stability_spearman"] = round(float(np.mean(stab)), 4)
            out[key].append(row)
            print(json.dumps({"sweep": key, **row}), flush=True)
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        own = [r for r in rows if r["method"] == method]
        entry = {"ours_s": round(float(np.mean([r["ours_s"] for r in own])), 3)}
        for key in FIDELITY:
            entry[f"ours_{key}"] = round(float(np.mean([r["ours"][key] for r in own])), 4)
        if "ref_s" in own[0]:
            entry["ref_s"] = round(float(np.mean([r["ref_s"] for r in own])), 3)
            entry["speedup"] = round(entry["ref_s"] / entry["ours_s"], 2)
            for key in FIDELITY:
                entry[f"ref_{key}"] = round(float(np.mean([r["ref"][key] for r in own])), 4)
            diff = [r["ours"]["insertion_auc"] - r["ref"]["insertion_auc"] for r in own]
            paired = mean_ci(diff)
            entry["insertion_diff"] = round(paired["mean"], 4)
            entry["insertion_diff_ci95"] = [round(v, 4) for v in paired["ci95"]]
            entry["insertion_at_least_ref"] = f"{sum(d >= 0 for d in diff)}/{len(diff)}"
        summary[method] = entry
    return summary


def main(argv: list[str] | None = None) -> int:
    from core.model.factory import default_model_dir, load_model
    from core.training.launcher import default_data_dir
    from core.xai.explainers.background import build_background, load_background

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--sweep", action="store_true", help="also measure the option trade-offs")
    parser.add_argument("--quick", action="store_true", help="ours only, no references")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "xai.json"))
    args = parser.parse_args(argv)

    model, card = load_model(args.model)
    background = load_background(args.model, card.image_size)
    if background is None:
        background = build_background(args.data, card.image_size).astype(np.float32)
    images = pick_images(Path(args.data), card.image_size, args.images)
    rows = compare(model, card, images, background, args.quick)
    summary = summarise(rows)
    result = {"model": card.name, "model_dir": args.model, "backbone": card.backbone, "image_size": card.image_size,
              "cpu_count": os.cpu_count(), "images": [n for n, _ in images], "summary": summary,
              "all_three_s_mean": round(sum(v["ours_s"] for v in summary.values()), 2), "rows": rows}
    print(f"\n{'method':<10}{'ours s':>8}{'ref s':>8}{'speedup':>9}{'ins ours':>10}{'ins ref':>9}{'ins diff [95% CI]':>26}"
          f"{'ours>=ref':>10}{'del ours':>10}{'del ref':>9}")
    for method, s in summary.items():
        ci = s.get("insertion_diff_ci95", [float("nan")] * 2)
        print(f"{method:<10}{s['ours_s']:>8.2f}{s.get('ref_s', float('nan')):>8.2f}{s.get('speedup', float('nan')):>9.2f}"
              f"{s['ours_insertion_auc']:>10.4f}{s.get('ref_insertion_auc', float('nan')):>9.4f}"
              f"{s.get('insertion_diff', float('nan')):>+9.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
              f"{s.get('insertion_at_least_ref', ''):>10}"
              f"{s['ours_deletion_auc']:>10.4f}{s.get('ref_deletion_auc', float('nan')):>9.4f}")
    print(f"all three methods, one scan: {result['all_three_s_mean']:.2f} s (mean over {len(images)} scans)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.sweep:
        result["sweep"] = sweep(model, images, background)
        out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
