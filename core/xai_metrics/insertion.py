"""Insertion AUC (Petsiuk et al. 2018, RISE): reveal the most important pixels first.

Start from a blurred copy of the scan (sigma 5 px at 224 px, scaled; option `insertion_baseline`)
and put the original pixels back in attribution order in `steps` equal steps. A faithful map makes
the target probability rise fast: higher is better.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.xai_metrics.base import MetricResult
from core.xai_metrics.perturbation import curve_metric, get_baseline

DEFAULT_OPTIONS = {"steps": 20, "insertion_baseline": "blur", "batch_size": 64}


def compute(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
            options: dict[str, Any]) -> MetricResult:
    start = get_baseline(options["insertion_baseline"])(image)
    return curve_metric(model, start, image, saliency_map, class_index, options, higher_is_better=True)
