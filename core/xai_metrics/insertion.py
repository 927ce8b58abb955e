"""Insertion AUC (Petsiuk et al. 2018, RISE): reveal the most important pixels first.

Start from a blurred copy of the scan (sigma 5 px at 224 px, scaled; option `insertion_baseline`)
and put the original pixels back in attribution order in `steps` equal steps. A faithful map makes
the target probability rise fast: higher is better.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.explain.base import positive_int
from core.xai_metrics.base import MetricResult
from core.xai_metrics.perturbation import auc, curve, get_baseline, pixel_order

DEFAULT_OPTIONS = {"steps": 20, "insertion_baseline": "blur", "batch_size": 64}


def compute(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
            options: dict[str, Any]) -> MetricResult:
    start = get_baseline(options["insertion_baseline"])(image)
    fractions, probs = curve(model, start, image, pixel_order(saliency_map), class_index,
                             positive_int(options, "steps"), positive_int(options, "batch_size"))
    return MetricResult(auc(fractions, probs), (fractions, probs), True)
