"""Composable perturbations for faithfulness metrics (in the style of pytorch-grad-cam's metrics).

A baseline is a function image -> image of "information removed"; `reveal` mixes two images by a
pixel mask; `pixel_order` ranks pixels by attribution; `curve` scores the target class while a
growing share of pixels (in that order) is switched from one image to another, in one batch.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from core.errors import ExplainError
from core.model.inference import predict_proba
from core.xai.metrics.base import MetricResult

Baseline = Callable[[np.ndarray], np.ndarray]
RISE_SIGMA_AT_224 = 5.0


def black(image: np.ndarray) -> np.ndarray:
    """All-zero image: the scanner background (RISE's deletion baseline)."""
    return np.zeros_like(image)


def blurred(image: np.ndarray) -> np.ndarray:
    """Gaussian blur, sigma 5 px at 224 px scaled to the image size (RISE's insertion start)."""
    sigma = RISE_SIGMA_AT_224 * image.shape[0] / 224.0
    return cv2.GaussianBlur(image, (0, 0), sigma)


BASELINES: dict[str, Baseline] = {"black": black, "blur": blurred}


def get_baseline(name: str) -> Baseline:
    if name not in BASELINES:
        raise ExplainError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return BASELINES[name]


def reveal(background: np.ndarray, foreground: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`foreground` where mask is true (or weight 1), `background` elsewhere; mask (H, W)."""
    m = np.asarray(mask, np.float32)[..., None]
    return background * (1 - m) + foreground * m


def check_map(image: np.ndarray, saliency_map: np.ndarray) -> np.ndarray:
    """The map as float32 (H, W) matching the image, or ExplainError with both shapes."""
    saliency_map = np.asarray(saliency_map, np.float32)
    if saliency_map.shape != image.shape[:2]:
        raise ExplainError(f"saliency map shape {saliency_map.shape} does not match the image {image.shape[:2]}")
    if not np.isfinite(saliency_map).all():
        raise ExplainError("the saliency map contains NaN or infinite values")
    return saliency_map


def pixel_order(saliency_map: np.ndarray) -> np.ndarray:
    """Flat pixel indices, most important first (stable: ties keep raster order)."""
    return np.argsort(-saliency_map.ravel(), kind="stable")


def curve(model: Any, start: np.ndarray, end: np.ndarray, order: np.ndarray, class_index: int,
          steps: int, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(fractions, probabilities): pixels switch from `start` to `end` in `order`, steps+1 points."""
    fractions = np.linspace(0.0, 1.0, steps + 1)
    n = order.size
    frames = []
    for fraction in fractions:
        mask = np.zeros(n, bool)
        mask[order[:int(round(fraction * n))]] = True
        frames.append(reveal(start, end, mask.reshape(start.shape[:2])))
    probs = predict_proba(model, np.stack(frames), batch_size)[:, class_index]
    return fractions, probs


def curve_metric(model: Any, start: np.ndarray, end: np.ndarray, saliency_map: np.ndarray, class_index: int,
                 options: Any, higher_is_better: bool) -> MetricResult:
    """Deletion/insertion: the AUC of `curve` in attribution order, as a MetricResult with its curve."""
    fractions, probs = curve(model, start, end, pixel_order(saliency_map), class_index,
                             options.steps, options.batch_size)
    return MetricResult(auc(fractions, probs), (fractions, probs), higher_is_better)


def auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoidal area under the curve over x in [0, 1]; in [0, 1] for probabilities."""
    return float(np.sum((values[1:] + values[:-1]) * np.diff(fractions)) / 2.0)
