"""Quantitative XAI metrics behind two registries, one subpackage per category.

METRICS (`faithfulness/`, need the model): `evaluate_map(model, image, map, class_index)`.
LOCALISATION (`localisation/`, need an expert mask, no model): `localise_map(map, mask)`.
Adding a metric = one module with a frozen `Options` dataclass and a `compute` function and one registry
entry; each entry declares its name, label, direction and description, and its options are its own
(`options={"deletion_auc": {"steps": 10}}`). Reference maps (`random_map`, `gaussian_map`, `uniform_map`) give
the floors every method must beat.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.model.inference import check_image
from core.xai.metrics.base import LocalisationSpec, MetricResult, MetricSpec
from core.xai.metrics.faithfulness import correlation, rise, road
from core.xai.metrics.faithfulness.perturbation import check_map
from core.xai.metrics.localisation import energy_pointing, pointing_game, rank_accuracy
from core.xai.options import build


def _registry(spec: type, rows: Iterable[tuple]) -> dict[str, Any]:
    """Registry entries by name from rows of (name, label, higher_is_better, plain, term, description,
    options_type, compute[, keyword arguments])."""
    entries = {}
    for name, label, higher, plain, term, description, options_type, compute, *keywords in rows:
        entries[name] = spec(name, label, higher, description, options_type, compute, plain=plain, term=term,
                             **(keywords[0] if keywords else {}))
    return entries


METRICS: dict[str, MetricSpec] = _registry(MetricSpec, (
    ("deletion_auc", "Deletion AUC", False, "Confidence left as the top pixels are deleted", "deletion AUC",
     "Area under the class probability as the most important pixels are blacked out (RISE). Lower is better.",
     rise.DeletionOptions, rise.compute_deletion),
    ("insertion_auc", "Insertion AUC", True, "Confidence regained as the top pixels are restored", "insertion AUC",
     "Area under the class probability as the most important pixels are restored into a blurred scan "
     "(RISE). Higher is better.", rise.InsertionOptions, rise.compute_insertion),
    ("faithfulness_correlation", "Faithfulness correlation", True, "Map agrees with the effect of removing pixels",
     "faithfulness correlation", "Pearson correlation between the attribution of random patch sets and the "
     "probability drop when they are blacked out (Bhatt et al. 2020). Higher is better.",
     correlation.Options, correlation.compute),
    ("road_morf", "ROAD MoRF", False, "Confidence left as the top pixels are imputed", "ROAD MoRF",
     "Area under the class probability as 10-90% of the pixels, most relevant first, are removed and filled "
     "in by noisy linear imputation (Rong et al. 2022: no hole shaped like the map). Lower is better.",
     road.Options, road.compute_morf),
    ("road_lerf", "ROAD LeRF", True, "Confidence left as the least relevant pixels are imputed", "ROAD LeRF",
     "Area under the class probability as 10-90% of the pixels, least relevant first, are removed and "
     "imputed (Rong et al. 2022). Higher is better.", road.Options, road.compute_lerf),
))
LOCALISATION: dict[str, LocalisationSpec] = _registry(LocalisationSpec, (
    ("energy_pointing", "Energy inside the mask", True, "Share of the map inside the tumour", "energy pointing game",
     "Energy-based pointing game (Wang et al. 2020): share of the map's positive mass inside the expert tumour "
     "mask. A uniform map scores the mask's area fraction. Higher is better.", energy_pointing.Options,
     energy_pointing.compute),
    ("pointing_hit", "Pointing-game hit rate", True, "Map's peak inside the tumour", "pointing-game hit rate",
     "Is the map's maximum inside the expert mask dilated by 3 px at 224 px (Zhang et al. 2018)? "
     "Higher is better.", pointing_game.Options, pointing_game.compute, {"binary": True}),
    ("rank_accuracy", "Relevance rank accuracy", True, "Top pixels inside the tumour", "relevance rank accuracy",
     "Of the K most relevant pixels (K = mask size), the share inside the mask (Arras et al. 2022). "
     "Higher is better.", rank_accuracy.Options, rank_accuracy.compute),
))
SANITY_LABEL = "Sanity check: rank correlation with a randomised model"
SANITY_DESCRIPTION = ("Spearman correlation between the map of the trained model and the map of a copy with its "
                      "head and top backbone layers re-initialised (Adebayo et al. 2018). Lower is better.")


MetricOptions = Mapping[str, Mapping[str, Any]]  # metric name -> that metric's option values


def metric_options(names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The options of each metric (default all) with their defaults, per metric name."""
    return {name: METRICS[name].default_options for name in (names or METRICS)}


def _typed_options(registry: Mapping[str, Any], names: Iterable[str] | None, options: MetricOptions | None,
                   kind: str) -> dict[str, Any]:
    """Checked metric names (default all) -> their typed options; an unknown name is an ExplainError."""
    names = list(names or registry)
    options = options or {}
    unknown = [n for n in [*names, *options] if n not in registry]
    if unknown:
        raise ExplainError(f"unknown {kind}(s) {unknown}; choose from {', '.join(registry)}")
    return {name: build(registry[name].options_type, dict(options.get(name, {})), f"metric '{name}'")
            for name in names}


def evaluate_map(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int = 0,
                 metrics: Iterable[str] | None = None, options: MetricOptions | None = None
                 ) -> dict[str, MetricResult]:
    """Every requested metric (default all) of one map for one image and class; `options` per metric name."""
    typed = _typed_options(METRICS, metrics, options, "metric")
    image = check_image(model, image)
    saliency_map = check_map(image, saliency_map)
    num_classes = int(model.output_shape[-1])
    if not 0 <= int(class_index) < num_classes:
        raise ExplainError(f"class_index must be in [0, {num_classes - 1}], got {class_index}")
    return {name: METRICS[name].compute(model, image, saliency_map, int(class_index), seed, typed[name])
            for name in typed}


def localise_map(saliency_map: np.ndarray, mask: np.ndarray, metrics: Iterable[str] | None = None,
                 options: MetricOptions | None = None) -> dict[str, float]:
    """Every requested localisation metric (default all) of one map against one expert mask (same shape)."""
    typed = _typed_options(LOCALISATION, metrics, options, "localisation metric")
    saliency_map = np.asarray(saliency_map, np.float32)
    mask = np.asarray(mask, bool)
    if saliency_map.shape != mask.shape:
        raise ExplainError(f"saliency map shape {saliency_map.shape} does not match the mask {mask.shape}")
    if not np.isfinite(saliency_map).all():
        raise ExplainError("the saliency map contains NaN or infinite values")
    return {name: LOCALISATION[name].compute(saliency_map, mask, typed[name]) for name in typed}


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

__all__ = ["LOCALISATION", "LOCALISATION_REFERENCE_MAPS", "METRICS", "MetricOptions", "MetricResult", "MetricSpec",
           "REFERENCE_MAPS", "evaluate_map", "gaussian_map", "localise_map", "metric_options", "random_map",
           "uniform_map"]
