"""Quantitative XAI metrics behind one registry: `evaluate_map(model, image, map, class_index)`.

Adding a metric = one module with a frozen `Options` dataclass and `compute(...) -> MetricResult` and one
METRICS entry. Reference maps (`random_map`, `gaussian_map`) give the rows every method must beat.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import ExplainError
from core.model.inference import check_image
from core.xai.metrics import deletion, faithfulness, insertion
from core.xai.metrics.base import MetricResult, MetricSpec
from core.xai.metrics.perturbation import check_map

METRICS: dict[str, MetricSpec] = {
    "deletion_auc": MetricSpec(
        "deletion_auc", "Deletion AUC", False,
        "Area under the class probability as the most important pixels are blacked out (RISE). Lower is better.",
        deletion.Options, deletion.compute),
    "insertion_auc": MetricSpec(
        "insertion_auc", "Insertion AUC", True,
        "Area under the class probability as the most important pixels are restored into a blurred scan "
        "(RISE). Higher is better.",
        insertion.Options, insertion.compute),
    "faithfulness_correlation": MetricSpec(
        "faithfulness_correlation", "Faithfulness correlation", True,
        "Pearson correlation between the attribution of random patch sets and the probability drop when "
        "they are blacked out (Bhatt et al. 2020). Higher is better.",
        faithfulness.Options, faithfulness.compute),
}
SANITY_LABEL = "Sanity check: rank correlation with a randomised model"
SANITY_DESCRIPTION = ("Spearman correlation between the map of the trained model and the map of a copy with its "
                      "head and top backbone layers re-initialised (Adebayo et al. 2018). Lower is better.")


def metric_options() -> dict[str, Any]:
    """Every metric option with its default."""
    merged: dict[str, Any] = {}
    for spec in METRICS.values():
        merged.update(spec.default_options)
    return merged


def evaluate_map(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int = 0,
                 metrics: tuple[str, ...] | list[str] | None = None, **options: Any) -> dict[str, MetricResult]:
    """Every requested metric (default all) of one map for one image and class."""
    names = list(metrics or METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ExplainError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    allowed = metric_options()
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise ExplainError(f"unknown metric option(s) {bad}; valid: {sorted(allowed)}")
    image = check_image(model, image)
    saliency_map = check_map(image, saliency_map)
    num_classes = int(model.output_shape[-1])
    if not 0 <= int(class_index) < num_classes:
        raise ExplainError(f"class_index must be in [0, {num_classes - 1}], got {class_index}")
    results = {}
    for name in names:
        spec = METRICS[name]
        typed = spec.options_type(**{k: v for k, v in options.items() if k in spec.default_options})
        results[name] = spec.compute(model, image, saliency_map, int(class_index), seed, typed)
    return results


def random_map(size: int, seed: int = 0) -> np.ndarray:
    """Reference: uniform noise (seeded); what a method with no information scores."""
    return np.random.default_rng(seed).random((size, size)).astype(np.float32)


def gaussian_map(size: int, seed: int = 0) -> np.ndarray:
    """Reference: a centred Gaussian (sigma = size / 4), 'the tumour is probably central'; no randomness."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    return np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * (size / 4.0) ** 2)).astype(np.float32)


REFERENCE_MAPS = {"random": ("Random map", random_map), "gaussian": ("Centred Gaussian", gaussian_map)}

__all__ = ["METRICS", "MetricResult", "MetricSpec", "REFERENCE_MAPS", "evaluate_map", "gaussian_map", "random_map"]
