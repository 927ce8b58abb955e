"""Deletion and insertion AUC (Petsiuk et al. 2018, RISE): the class probability as pixels change in
attribution order.

Deletion replaces the most important pixels first by the baseline (option `baseline`: black as in RISE, or
blur) in `steps` equal steps; the area under the probability curve (x in [0, 1]) is the score, and a faithful
map makes it drop fast: lower is better. Insertion starts from a blurred copy of the scan (sigma 5 px at
224 px, scaled) and puts the original pixels back in the same order: a faithful map makes the probability rise
fast, higher is better.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.xai.metrics.base import MetricResult
from core.xai.metrics.faithfulness.perturbation import CurveOptions, curve_metric, get_baseline


@dataclass(frozen=True)
class DeletionOptions(CurveOptions):
    """The curve's options (`CurveOptions`); pixels are deleted to black by default."""

    baseline: str = "black"


@dataclass(frozen=True)
class InsertionOptions(CurveOptions):
    """The curve's options (`CurveOptions`); pixels are restored into a blurred copy by default."""

    baseline: str = "blur"


def compute_deletion(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
                     options: DeletionOptions) -> MetricResult:
    """The deletion curve of the map from the scan towards the baseline, and its area (lower is better)."""
    end = get_baseline(options.baseline)(image)
    return curve_metric(model, image, end, saliency_map, class_index, options, higher_is_better=False)


def compute_insertion(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
                      options: InsertionOptions) -> MetricResult:
    """The insertion curve of the map from the baseline back to the scan, and its area (higher is better)."""
    start = get_baseline(options.baseline)(image)
    return curve_metric(model, start, image, saliency_map, class_index, options, higher_is_better=True)
