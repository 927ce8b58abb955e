"""Deletion AUC (Petsiuk et al. 2018, RISE): remove the most important pixels first.

Pixels ranked by attribution are replaced by the baseline (default black, as in RISE; option
`deletion_baseline="blur"`) in `steps` equal steps; the target probability is recorded and the
area under that curve (x in [0, 1]) is the score. A faithful map makes it drop fast: lower is better.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.xai_metrics.base import MetricResult
from core.xai_metrics.perturbation import curve_metric, get_baseline

DEFAULT_OPTIONS = {"steps": 20, "deletion_baseline": "black", "batch_size": 64}


def compute(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
            options: dict[str, Any]) -> MetricResult:
    end = get_baseline(options["deletion_baseline"])(image)
    return curve_metric(model, image, end, saliency_map, class_index, options, higher_is_better=False)
