"""Deletion AUC (Petsiuk et al. 2018, RISE): remove the most important pixels first.

Pixels ranked by attribution are replaced by the baseline (default black, as in RISE; option
`deletion_baseline="blur"`) in `steps` equal steps; the target probability is recorded and the
area under that curve (x in [0, 1]) is the score. A faithful map makes it drop fast: lower is better.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.xai.metrics.base import MetricResult
from core.xai.metrics.perturbation import curve_metric, get_baseline
from core.xai.options import in_open_interval, int_at_least


@dataclass(frozen=True)
class Options:
    """steps: points of the curve minus one; deletion_baseline: black or blur; batch_size: images per forward call;
    saturation_ratio: baseline/scan probability ratio from which the curve is reported as saturated."""

    steps: int = 20
    deletion_baseline: str = "black"
    batch_size: int = 64
    saturation_ratio: float = 0.9

    def __post_init__(self) -> None:
        int_at_least("steps", self.steps)
        in_open_interval("saturation_ratio", self.saturation_ratio, 0.0, 1.0 + 1e-9)
        get_baseline(self.deletion_baseline)
        int_at_least("batch_size", self.batch_size)


def compute(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
            options: Options) -> MetricResult:
    end = get_baseline(options.deletion_baseline)(image)
    return curve_metric(model, image, end, saliency_map, class_index, options, higher_is_better=False)
