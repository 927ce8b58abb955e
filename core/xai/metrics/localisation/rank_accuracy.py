"""Relevance rank accuracy (Arras et al. 2022): of the K highest-ranked pixels (K = mask size), the share
inside the mask. A random map scores the mask's area fraction on average. Higher is better.
Ties are broken in raster order (as numpy's stable sort, and Quantus, do).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Options:
    """No options: the metric is parameter-free."""


def compute(saliency_map: np.ndarray, mask: np.ndarray, options: Any = None) -> float:
    """Share of the K = mask-size highest-ranked pixels inside the mask; NaN for an empty mask."""
    mask = np.asarray(mask, bool).ravel()
    k = int(mask.sum())
    if k == 0:
        return float("nan")
    order = np.argsort(-np.asarray(saliency_map, np.float64).ravel(), kind="stable")
    return float(mask[order[:k]].mean())
