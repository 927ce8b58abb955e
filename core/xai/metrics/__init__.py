"""Quantitative XAI metrics behind two registries.

METRICS (faithfulness, need the model): `evaluate_map(model, image, map, class_index)`.
LOCALISATION (need an expert mask, no model): `localise_map(map, mask)`.
Adding a metric = one module with a frozen `Options` dataclass and a `compute` function and one registry
entry. Reference maps (`random_map`, `gaussian_map`, `uniform_map`) give the floors every method must beat.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import ExplainError
from core.model.inference import check_image
from core.xai.metrics import deletion, energy_pointing, faithfulness, insertion, pointing_game, rank_accuracy, road
from core.xai.metrics.base import LocalisationSpec, MetricResult, MetricSpec
from core.xai.metrics.perturbation import check_map
from core.xai.options import build

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
    "road_morf": MetricSpec(
        "road_morf", "ROAD MoRF", False,
        "Mean class probability as 10-90% of the pixels, most relevant first, are removed and filled in by "
        "noisy linear imputation (Rong et al. 2022: no hole shaped like the map). Lower is better.",
        road.Options, road.compute_morf),
    "road_lerf": MetricSpec(
        "road_lerf", "ROAD LeRF", True,
        "Mean class probability as 10-90% of the pixels, least relevant first, are removed and imputed "
        "(Rong et al. 2022). Higher is better.",
        road.Options, road.compute_lerf),
}
LOCALISATION: dict[str, LocalisationSpec] = {
    "energy_pointing": LocalisationSpec(
        "energy_pointing", "Energy inside the mask", True,
        "Energy-based pointing game (Wang et al. 2020): share of the map's positive mass inside the expert "
        "tumour mask. A uniform map scores the mask's area fraction. Higher is better.",
        energy_pointing.Options, energy_pointing.compute),
    "pointing_hit": LocalisationSpec(
        "pointing_hit", "Pointing-game hit rate", True,
        "Is the map's maximum inside the expert mask dilated by 3 px at 224 px (Zhang et al. 2018)? "
        "Higher is better.",
        pointing_game.Options, pointing_game.compute, binary=True),
    "rank_accuracy": LocalisationSpec(
        "rank_accuracy", "Relevance rank accuracy", True,
        "Of the K most relevant pixels (K = mask size), the share inside the mask (Arras et al. 2022). "
        "Higher is better.",
        rank_accuracy.Options, rank_accuracy.compute),
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


def localise_map(saliency_map: np.ndarray, mask: np.ndarray, metrics: tuple[str, ...] | list[str] | None = None,
                 **options: Any) -> dict[str, float]:
    """Every requested localisation metric (default all) of one map against one expert mask (same shape)."""
    names = list(metrics or LOCALISATION)
    unknown = [n for n in names if n not in LOCALISATION]
    if unknown:
        raise ExplainError(f"unknown localisation metric(s) {unknown}; choose from {', '.join(LOCALISATION)}")
    saliency_map = np.asarray(saliency_map, np.float32)
    mask = np.asarray(mask, bool)
    if saliency_map.shape != mask.shape:
        raise ExplainError(f"saliency map shape {saliency_map.shape} does not match the mask {mask.shape}")
    if not np.isfinite(saliency_map).all():
        raise ExplainError("the saliency map contains NaN or infinite values")
    results = {}
    for name in names:
        spec = LOCALISATION[name]
        typed = build(spec.options_type, {k: v for k, v in options.items() if k in spec.default_options},
                      f"metric '{name}'")
        results[name] = spec.compute(saliency_map, mask, typed)
    return results


def random_map(size: int, seed: int = 0) -> np.ndarray:
    """Reference: uniform noise (seeded); what a method with no information scores."""
    return np.random.default_rng(seed).random((size, size)).astype(np.float32)


def gaussian_map(size: int, seed: int = 0) -> np.ndarray:
    """Reference: a centred Gaussian (sigma = size / 4), 'the tumour is probably central'; no randomness."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    return np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * (size / 4.0) ** 2)).astype(np.float32)


def uniform_map(size: int, seed: int = 0) -> np.ndarray:
    """Reference: every pixel equal; its energy inside a mask is the mask's area fraction (the chance level)."""
    return np.ones((size, size), np.float32)


REFERENCE_MAPS = {"random": ("Random map", random_map), "gaussian": ("Centred Gaussian", gaussian_map)}
LOCALISATION_REFERENCE_MAPS = {**REFERENCE_MAPS, "uniform": ("Uniform map (= mask area)", uniform_map)}

__all__ = ["LOCALISATION", "LOCALISATION_REFERENCE_MAPS", "METRICS", "MetricResult", "MetricSpec", "REFERENCE_MAPS",
           "evaluate_map", "gaussian_map", "localise_map", "random_map", "uniform_map"]
