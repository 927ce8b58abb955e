"""Energy-based pointing game (Wang et al. 2020, Score-CAM): share of the map's positive mass inside the mask.

For a non-negative map this equals relevance mass accuracy (Arras et al. 2022). A uniform map scores
the mask's area fraction (the floor per scan). Higher is better; NaN for a map with no positive mass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.xai.metrics.base import positive_part


@dataclass(frozen=True)
class Options:
    """No options: the metric is parameter-free."""


def compute(saliency_map: np.ndarray, mask: np.ndarray, options: Any = None) -> float:
    """Share of the map's positive mass inside the mask; NaN when the map has none."""
    positive = positive_part(saliency_map)
    total = positive.sum()
    return float(positive[np.asarray(mask, bool)].sum() / total) if total > 0 else float("nan")
