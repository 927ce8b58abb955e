"""Pointing game (Zhang et al. 2018) with a tolerance: is the map's maximum inside the (dilated) mask?

The mask is dilated by `tolerance` pixels at 224 px (scaled to the map's size; the usual 15 px of the
original is large for a 0.7%-area pituitary tumour, so the default is small). When the maximum is a
plateau (LIME's superpixels, a clipped map) the plateau pixel nearest to the plateau's centre of mass
counts, not the first one in raster order. Hit = 1, miss = 0; NaN for a map with no positive value.
Higher is better.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.xai.metrics.base import positive_part
from core.xai.options import int_at_least


@dataclass(frozen=True)
class Options:
    """tolerance: dilation of the mask in pixels at 224 px, scaled to the map size."""

    tolerance: int = 3

    def __post_init__(self) -> None:
        int_at_least("tolerance", self.tolerance, 0)


def dilate(mask: np.ndarray, tolerance_224: int) -> np.ndarray:
    """The mask grown by a disk of `tolerance_224` px at 224 px, scaled to the mask's size."""
    radius = int(round(tolerance_224 * mask.shape[0] / 224.0))
    if radius <= 0:
        return np.asarray(mask, bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(np.asarray(mask, np.uint8), kernel) > 0


def peak(saliency_map: np.ndarray) -> tuple[int, int] | None:
    """(row, col) of the maximum; for a plateau, its pixel nearest to the plateau's centre of mass."""
    positive = positive_part(saliency_map)
    top = positive.max()
    if top <= 0:
        return None
    rows, cols = np.nonzero(positive >= top - 1e-9 * top)
    nearest = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return int(rows[nearest]), int(cols[nearest])


def compute(saliency_map: np.ndarray, mask: np.ndarray, options: Options | None = None) -> float:
    """1.0 when the map's peak lies in the dilated mask, else 0.0; NaN when the map has no positive value."""
    options = options or Options()
    where = peak(saliency_map)
    if where is None:
        return float("nan")
    return float(dilate(mask, options.tolerance)[where])
