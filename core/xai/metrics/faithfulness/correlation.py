"""Faithfulness correlation (Bhatt et al. 2020): do attributions predict the effect of removal?

The image is cut into a `grid` x `grid` set of patches; `n_subsets` random subsets (seeded) of
`subset_fraction` of the patches are replaced by the baseline (default black). The score is the
Pearson correlation between the attribution summed over each subset and the drop of the target
probability it causes. Higher is better; NaN when either side is constant (undefined).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.model.inference import predict_proba
from core.xai.metrics.base import MetricResult
from core.xai.metrics.faithfulness.perturbation import get_baseline, reveal
from core.xai.options import in_open_interval, int_at_least


@dataclass(frozen=True)
class Options:
    """n_subsets: random patch sets; subset_fraction: share of patches per set; grid: patches per side;
    baseline: black or blur; batch_size: images per forward call."""

    n_subsets: int = 50
    subset_fraction: float = 0.1
    grid: int = 16
    baseline: str = "black"
    batch_size: int = 64

    def __post_init__(self) -> None:
        int_at_least("n_subsets", self.n_subsets, 3)
        in_open_interval("subset_fraction", self.subset_fraction, 0.0, 1.0)
        int_at_least("grid", self.grid, 2)
        get_baseline(self.baseline)
        int_at_least("batch_size", self.batch_size)


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
            options: Options) -> MetricResult:
    """Pearson correlation of the attribution in `n_subsets` seeded patch sets with the probability drop their
    removal causes (no curve)."""
    grid, n_subsets, fraction = options.grid, options.n_subsets, float(options.subset_fraction)
    labels = patch_labels(image.shape[0], grid)
    per_patch = np.bincount(labels.ravel(), weights=saliency_map.ravel(), minlength=grid * grid)
    k = max(1, int(round(fraction * grid * grid)))
    rng = np.random.default_rng(seed)
    subsets = [rng.choice(grid * grid, size=k, replace=False) for _ in range(n_subsets)]
    baseline = get_baseline(options.baseline)(image)
    frames = [reveal(image, baseline, np.isin(labels, s)) for s in subsets]
    probs = predict_proba(model, np.stack([image] + frames), options.batch_size)[:, class_index]
    drops = probs[0] - probs[1:]
    sums = np.array([per_patch[s].sum() for s in subsets])
    return MetricResult(pearson(sums, drops), None, True)
