"""Seconds for the three maps of one scan (the app's budget: 15 s together), warm and cold.

    python benchmarks/three_maps.py [--model DIR] [--repeats 2] SCAN [SCAN ...]

The model is loaded once; the first call of each method in the process includes tracing (what a fresh process
pays), later calls are what the app pays after its warm-up. Prints one line per scan and repeat.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.io.images import load_for_model  # noqa: E402
from core.model.factory import default_model_dir, load_model  # noqa: E402
from core.xai.explainers import EXPLAINERS, explain  # noqa: E402
from core.xai.explainers.background import load_background  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="+")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model_dir = Path(args.model) if args.model else default_model_dir()
    model, card = load_model(model_dir)
    background = load_background(model_dir, card.image_size)
    for scan in args.scans:
        image = load_for_model(scan, card.image_size, scan, card.crop)
        for repeat in range(args.repeats):
            seconds = {}
            for method in EXPLAINERS:
                options = {"background": background} if method == "shap" and background is not None else {}
                start = time.perf_counter()
                explain(model, image, method, 0, card, **options)
                seconds[method] = time.perf_counter() - start
            parts = "  ".join(f"{m} {s:.2f} s" for m, s in seconds.items())
            print(f"{Path(scan).name} repeat {repeat + 1}: {parts}  total {sum(seconds.values()):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
