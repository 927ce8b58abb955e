"""Tumour recall of a model on the tumour collection's validation groups, as `python -m train` splits them.

    python benchmarks/collection_recall.py MODEL_DIR [--collection DIR] [--seed 42] [--val-fraction 0.1]

Prints one JSON line: recall with its Wilson 95% interval, called-tumour / slices per near-duplicate group, and the
mean of the groups' recalls (a large group counts once). Validation data only: the groups `python -m train` holds
out with the same seed and fraction (defaults as in `TrainConfig`), never external-eval images.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.data.collections import INDEX_FILE, tumour_collection  # noqa: E402
from core.data.discovery import load_samples  # noqa: E402
from core.model.factory import load_model  # noqa: E402
from core.model.inference import predict_proba  # noqa: E402
from core.model.series_assessment import no_tumour_class  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402


def main() -> int:
    defaults = TrainConfig(data="")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--collection", default=str(REPO.parent / "shared" / "data" / "brain-mri-tumour-normal"))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    args = parser.parse_args()
    model, card = load_model(args.model)
    name = no_tumour_class(card.class_names)
    if name is None:
        parser.error(f"{args.model} has no no-tumour class: tumour recall is undefined")
    no_tumour = card.class_names.index(name)
    part = tumour_collection(args.collection, args.val_fraction, args.seed)
    called = predict_proba(model, load_samples(part.validation, card.image_size, crop=card.crop).images).argmax(1)
    called = called != no_tumour
    with open(Path(args.collection) / INDEX_FILE, newline="") as handle:
        group_of = {row["file"]: row["dup_group"] for row in csv.DictReader(handle)}
    groups: dict[str, list[bool]] = defaultdict(list)
    for sample, hit in zip(part.validation, called):
        groups[group_of[Path(sample.path).relative_to(args.collection).as_posix()]].append(bool(hit))
    k, n = int(called.sum()), len(called)
    ci = binomtest(k, n).proportion_ci(method="wilson")
    print(json.dumps({"model": str(args.model), "recall": round(k / n, 4), "called": k, "slices": n,
                      "ci95": [round(ci.low, 4), round(ci.high, 4)],
                      "per_group": {g: [sum(v), len(v)] for g, v in sorted(groups.items())},
                      "mean_group_recall": round(float(np.mean([np.mean(v) for v in groups.values()])), 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
