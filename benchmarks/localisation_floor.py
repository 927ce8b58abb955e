"""Is each map above the centred-Gaussian floor, per class? Paired on the same scans of a localisation record.

    python benchmarks/localisation_floor.py [MODEL_DIR] [--metric energy_pointing]

Reads `xai_localisation.json` (from `python -m core xai-eval --localisation`) and prints, per class and method, the
mean per-scan difference (map − centred Gaussian) with its 95% t-interval and a one-sided Wilcoxon signed-rank p
(H1: the map scores higher). Pairing on the same scans is what makes a small difference measurable; the record's
own table gives each map's interval on its own, whose overlap with the floor's says little.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.model.factory import default_model_dir  # noqa: E402
from core.xai.localisation import load_localisation  # noqa: E402

FLOOR = "gaussian"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(default_model_dir()))
    parser.add_argument("--metric", default="energy_pointing")
    args = parser.parse_args()
    record = load_localisation(args.model)
    if record is None:
        raise SystemExit(f"{args.model} has no localisation record; run `python -m core xai-eval --localisation`")
    print(f"{record.model}: {record.n_images} scans, {args.metric}, map − centred Gaussian (paired)")
    print("| class (n) | floor | " + " | ".join(record.method_labels.get(m, m) for m in record.methods) + " |")
    print("|---" * (2 + len(record.methods)) + "|")
    for cls in sorted({r["class"] for r in record.records}):
        rows = [r for r in record.records if r["class"] == cls]
        floor = np.array([r["maps"][FLOOR][args.metric] for r in rows])
        cells = []
        for method in record.methods:
            diff = np.array([r["maps"][method][args.metric] for r in rows]) - floor
            low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
            p = stats.wilcoxon(diff, alternative="greater").pvalue
            cells.append(f"{diff.mean():+.3f} [{low:+.3f}, {high:+.3f}] p={p:.2g}")
        print(f"| {cls} ({len(rows)}) | {floor.mean():.3f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
