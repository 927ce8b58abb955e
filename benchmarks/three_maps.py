"""Seconds for the three maps of one scan (the app's budget: 15 s together), per forward-pass engine, side by side.

    python benchmarks/three_maps.py [--model DIR] [--repeats 3] [--engines tensorflow,auto] [--out JSON] SCAN...

The model is loaded once per engine (BRAINSCAN_ENGINE at load: `tensorflow`, or `auto` = OpenVINO f32 when it
passes the load check) and each method is called once per engine first (tracing, compilation: what the app's
warm-up pays), so the timed calls are what a clinician waits for. The engines alternate within every repeat, so
both see the same machine load; the summary gives each engine's median per method and in total, and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.io.images import load_for_model  # noqa: E402
from core.model.engine import engine_name  # noqa: E402
from core.model.factory import default_model_dir, load_model  # noqa: E402
from core.xai.explainers import EXPLAINERS, explain  # noqa: E402
from core.xai.explainers.background import load_background  # noqa: E402


def _load(model_dir: Path, engine: str) -> tuple:
    os.environ["BRAINSCAN_ENGINE"] = engine  # read by load_model (core.settings), at call time
    return load_model(model_dir)


def _maps(model, card, image, background) -> dict[str, float]:
    seconds = {}
    for method in EXPLAINERS:
        options = {"background": background} if method == "shap" and background is not None else {}
        start = time.perf_counter()
        explain(model, image, method, 0, card, **options)
        seconds[method] = time.perf_counter() - start
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="+")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default="tensorflow,auto")
    parser.add_argument("--out", help="write the timings as JSON")
    args = parser.parse_args()
    model_dir = Path(args.model) if args.model else default_model_dir()
    loaded = {choice: _load(model_dir, choice) for choice in args.engines.split(",")}
    card = next(iter(loaded.values()))[1]
    background = load_background(model_dir, card.image_size)
    images = [load_for_model(s, card.image_size, s, card.crop) for s in args.scans]
    for model, card in loaded.values():  # warm-up: traces and compiled graphs, as the app's warm-up thread
        _maps(model, card, images[0], background)
    timings: dict[str, list[dict[str, float]]] = {choice: [] for choice in loaded}
    for scan, image in zip(args.scans, images):
        for repeat in range(args.repeats):
            for choice, (model, card) in loaded.items():
                seconds = _maps(model, card, image, background)
                timings[choice].append(seconds)
                parts = "  ".join(f"{m} {s:.2f} s" for m, s in seconds.items())
                print(f"{Path(scan).name} repeat {repeat + 1} {engine_name(model)}: {parts}  "
                      f"total {sum(seconds.values()):.2f} s", flush=True)
    summary = {}
    for choice, rows in timings.items():
        medians = {m: round(statistics.median(r[m] for r in rows), 3) for m in EXPLAINERS}
        summary[choice] = {"engine": engine_name(loaded[choice][0]), "median_seconds": medians,
                           "median_total": round(statistics.median(sum(r.values()) for r in rows), 3)}
        print(f"{choice} ({summary[choice]['engine']}): median " + "  ".join(f"{m} {s:.2f} s" for m, s in
                                                                            medians.items())
              + f"  total {summary[choice]['median_total']:.2f} s (budget 15 s)")
    first, *others = summary
    for other in others:
        print(f"{other} vs {first}: {summary[first]['median_total'] / summary[other]['median_total']:.2f}x faster "
              "in total")
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python benchmarks/three_maps.py " + " ".join(sys.argv[1:]),
                                              "model": str(model_dir), "scans": args.scans, "repeats": args.repeats,
                                              "summary": summary, "timings": timings}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
