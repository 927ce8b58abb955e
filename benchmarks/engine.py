"""Benchmark: the forward-pass engines side by side in one run (TensorFlow traced, OpenVINO f32, OpenVINO bf16).

    python benchmarks/engine.py [--model DIR] [--data DIR] [--images 512] [--rounds 3] [--scans 3] [--out JSON]

1. Agreement on all of `Testing/` (preprocessed once): argmax agreement and the largest change of the raw and of
   the calibrated probabilities against TensorFlow, per engine (the rule: same argmax, within 0.5 points).
2. Throughput: predict_proba at batch 64 on `--images` Testing scans, the engines interleaved round by round (a
   training run may share the CPU: compare the ratios, which interleaving keeps fair), median img/s and ratios.
3. Score-CAM and LIME maps (registry defaults) of `--scans` scans: Spearman of each engine's map vs TensorFlow's.
Also the conversion time (0 when the converted model was already in the cache) and whether the CPU has BF16.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["BRAINSCAN_ENGINE"] = "tensorflow"  # the benchmark attaches each engine itself
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from core.data.discovery import discover_for_model, load_samples  # noqa: E402
from core.model import engine  # noqa: E402
from core.model.factory import default_model_dir, load_model  # noqa: E402
from core.model.inference import _probe, predict_proba, predict_with_features  # noqa: E402
from core.model.trust import load_trust  # noqa: E402
from core.settings import settings  # noqa: E402
from core.xai.explainers import explain  # noqa: E402


def _runners(model, path: Path) -> dict[str, engine.OpenVinoRunner | None]:
    key, cache = engine.file_sha256(path), settings().engine_cache
    runners: dict[str, engine.OpenVinoRunner | None] = {engine.TENSORFLOW: None}
    for name in [engine.OPENVINO_F32] + ([engine.OPENVINO_BF16] if engine.bf16_supported() else []):
        runners[name] = engine.compile_runner(_probe(model)[0], key, cache, name)
        print(f"{name}: conversion {runners[name].convert_seconds:.1f} s (0 = from the cache)", flush=True)
    return runners


def agreement(model, images: np.ndarray, trust, runners: dict) -> dict:
    """Argmax agreement and max/mean |dp| (raw and calibrated) of each engine against TensorFlow."""
    outputs = {}
    for name, runner in runners.items():
        engine.attach(model, runner)
        start = time.perf_counter()
        proba, features = predict_with_features(model, images)
        calibrated = trust.calibrate(features["logits"]) if trust else proba
        outputs[name] = (proba, calibrated, time.perf_counter() - start)
    engine.attach(model, None)
    ref_raw, ref_cal, _ = outputs[engine.TENSORFLOW]
    report = {}
    for name, (raw, cal, seconds) in outputs.items():
        report[name] = {"argmax_agree": int((raw.argmax(1) == ref_raw.argmax(1)).sum()),
                        "argmax_agree_calibrated": int((cal.argmax(1) == ref_cal.argmax(1)).sum()),
                        "max_abs_dp_raw": float(np.abs(raw - ref_raw).max()),
                        "mean_abs_dp_raw": float(np.abs(raw - ref_raw).mean()),
                        "max_abs_dp_calibrated": float(np.abs(cal - ref_cal).max()),
                        "seconds_all_testing": seconds, "n": len(images)}
        print(name, report[name], flush=True)
    return report


def throughput(model, images: np.ndarray, runners: dict, rounds: int) -> dict:
    """Median img/s per engine at batch 64, engines interleaved within each round."""
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            engine.attach(model, runner)
            predict_proba(model, images[:64])  # warm (first call traces / allocates)
            start = time.perf_counter()
            predict_proba(model, images, 64)
            rates[name].append(len(images) / (time.perf_counter() - start))
    engine.attach(model, None)
    tf_rate = float(np.median(rates[engine.TENSORFLOW]))
    out = {name: {"img_per_s": float(np.median(r)), "ratio_vs_tensorflow": float(np.median(r)) / tf_rate,
                  "rounds": [round(x, 1) for x in r]} for name, r in rates.items()}
    for name, row in out.items():
        print(f"{name}: {row['img_per_s']:.1f} img/s ({row['ratio_vs_tensorflow']:.2f}x) rounds {row['rounds']}",
              flush=True)
    return out


def maps(model, images: np.ndarray, runners: dict) -> dict:
    """Spearman of each engine's Score-CAM and LIME map against TensorFlow's, per scan."""
    out: dict[str, dict[str, list[float]]] = {}
    for method in ("scorecam", "lime"):
        for image in images:
            heats = {}
            for name, runner in runners.items():
                engine.attach(model, runner)
                heats[name] = explain(model, image.astype(np.float32), method).map.ravel()
            for name in runners:
                rho = float(spearmanr(heats[engine.TENSORFLOW], heats[name]).statistic)
                out.setdefault(name, {}).setdefault(method, []).append(round(rho, 4))
    engine.attach(model, None)
    print("maps spearman vs tensorflow:", out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(settings().data or REPO.parent / "shared/data/brain-tumor-mri"))
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    model, card = load_model(args.model)
    path = Path(args.model) / (card.model_file or "model.keras")
    runners = _runners(model, path)
    start = time.perf_counter()
    index = discover_for_model(args.data, card.class_names, ["Testing"])
    images = load_samples(index.splits["Testing"], card.image_size, crop=card.crop).images.astype(np.float32)
    print(f"{len(images)} Testing scans preprocessed in {time.perf_counter() - start:.1f} s", flush=True)
    pick = np.random.default_rng(0).permutation(len(images))
    result = {"bf16_supported": engine.bf16_supported(), "batch": 64,
              "agreement": agreement(model, images, load_trust(args.model, card.class_names), runners),
              "throughput": throughput(model, images[pick[:args.images]], runners, args.rounds),
              "maps_spearman": maps(model, images[pick[:args.scans]], runners),
              "conversion_seconds": {n: r.convert_seconds for n, r in runners.items() if r}}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
