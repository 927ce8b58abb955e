"""Faithfulness correlation (Bhatt et al. 2020): do attributions predict the effect of removal?

The image is cut into a `grid` x `grid` set of patches; `n_subsets` random subsets (seeded) of
`subset_fraction` of the patches are replaced by the baseline (default black). The score is the
Pearson correlation between the attribution summed over each subset and the drop of the target
probability it causes. Higher is better; NaN when either side is constant (undefined).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import ExplainError
from core.explain.base import positive_int, predict_batches
from core.xai_metrics.base import MetricResult
from core.xai_metrics.perturbation import get_baseline, reveal

DEFAULT_OPTIONS = {"n_subsets": 50, "subset_fraction": 0.1, "grid": 16, "faithfulness_baseline": "black",
                   "batch_size": 64}


def patch_labels(size: int, grid: int) -> np.ndarray:
    """(size, size) patch index of every pixel on a grid x grid layout."""
    edges = np.minimum(np.arange(size) * grid // size, grid - 1)
    return edges[:, None] * grid + edges[None, :]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either input is constant."""
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-12 else float("nan")


def compute(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
            options: dict[str, Any]) -> MetricResult:
    grid = positive_int(options, "grid", minimum=2)
    n_subsets = positive_int(options, "n_subsets", minimum=3)
    fraction = float(options["subset_fraction"])
    if not 0 < fraction < 1:
        raise ExplainError(f"subset_fraction must be in (0, 1), got {fraction}")
    labels = patch_labels(image.shape[0], grid)
    per_patch = np.bincount(labels.ravel(), weights=saliency_map.ravel(), minlength=grid * grid)
    k = max(1, int(round(fraction * grid * grid)))
    rng = np.random.default_rng(seed)
    subsets = [rng.choice(grid * grid, size=k, replace=False) for _ in range(n_subsets)]
    baseline = get_baseline(options["faithfulness_baseline"])(image)
    frames = [reveal(image, baseline, np.isin(labels, s)) for s in subsets]
    probs = predict_batches(model, np.stack([image] + frames), positive_int(options, "batch_size"))[:, class_index]
    drops = probs[0] - probs[1:]
    sums = np.array([per_patch[s].sum() for s in subsets])
    return MetricResult(pearson(sums, drops), None, True)
