"""Composable perturbations for faithfulness metrics (in the style of pytorch-grad-cam's metrics).

A baseline is a function image -> image of "information removed"; `reveal` mixes two images by a
pixel mask; `pixel_order` ranks pixels by attribution; `curve` scores the target class while a
growing share of pixels (in that order) is switched from one image to another, in one batch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.errors import ExplainError
from core.model.inference import predict_proba
from core.xai.metrics.base import MetricResult
from core.xai.options import in_open_interval, int_at_least

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


@dataclass(frozen=True)
class CurveOptions:
    """Options of a deletion or insertion curve. steps: points of the curve minus one; baseline: black or blur;
    batch_size: images per forward call; saturation_ratio: baseline/scan probability ratio from which the curve
    is reported as saturated."""

    steps: int = 20
    baseline: str = "black"
    batch_size: int = 64
    saturation_ratio: float = 0.9

    def __post_init__(self) -> None:
        int_at_least("steps", self.steps)
        in_open_interval("saturation_ratio", self.saturation_ratio, 0.0, 1.0 + 1e-9)
        get_baseline(self.baseline)
        int_at_least("batch_size", self.batch_size)


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
                 options: CurveOptions, higher_is_better: bool) -> MetricResult:
    """Deletion/insertion: the AUC of `curve` in attribution order, as a MetricResult with its curve."""
    fractions, probs = curve(model, start, end, pixel_order(saliency_map), class_index,
                             options.steps, options.batch_size)
    saturated, note = saturation(probs, higher_is_better, options.saturation_ratio)
    return MetricResult(auc(fractions, probs), (fractions, probs), higher_is_better, saturated, note)


def saturation(probs: np.ndarray, insertion: bool, ratio: float) -> tuple[bool, str]:
    """Is the curve meaningless because the information-free image already scores like the scan?

    Insertion starts from the baseline (probs[0]) and ends at the scan (probs[-1]); deletion the other way
    round. When the baseline's probability is at least `ratio` times the scan's, any map gets an AUC near
    the scan's own score (a blurred glioma scan that still scores 1.0 gives every map ~1.0).
    """
    scan, base = (probs[-1], probs[0]) if insertion else (probs[0], probs[-1])
    if scan > 0 and base >= ratio * scan:
        which = "blurred" if insertion else "blacked-out"
        return True, f"saturated: the {which} baseline already scores {base:.2f} (scan {scan:.2f})"
    return False, ""


def auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoidal area under the curve over x in [0, 1]; in [0, 1] for probabilities."""
    return float(np.sum((values[1:] + values[:-1]) * np.diff(fractions)) / 2.0)


# ROAD's neighbourhood (Rong et al. 2022): direct neighbours weigh 1/6, diagonal ones 1/12.
IMPUTATION_WEIGHTS = (((0, 1), 1 / 6), ((0, -1), 1 / 6), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
                      ((1, 1), 1 / 12), ((1, -1), 1 / 12), ((-1, 1), 1 / 12), ((-1, -1), 1 / 12))


def noisy_linear_imputation(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator
                            ) -> np.ndarray:
    """ROAD's imputation: every removed pixel becomes the weighted mean of its 8 neighbours (a sparse linear
    system over all removed pixels, so large holes are filled smoothly from their border), plus Gaussian
    noise of standard deviation `noise` (in image units). `removed` is a bool (H, W) mask; channels are
    solved together. Matches `quantus.functions.perturb_func.noisy_linear_imputation` (tested).
    """
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    h, w = removed.shape
    flat = image.reshape(h * w, -1).astype(np.float64)
    ids = np.flatnonzero(removed.ravel())
    if ids.size == 0:
        return image.copy()
    var = np.full(h * w, -1, np.int64)
    var[ids] = np.arange(ids.size)
    r, c = np.divmod(ids, w)
    rows, cols, vals = [], [], []
    diag = np.ones(ids.size)
    rhs = np.zeros((ids.size, flat.shape[1]))
    for (dr, dc), weight in IMPUTATION_WEIGHTS:
        rr, cc = r + dr, c + dc
        valid = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        diag[~valid] -= weight
        neighbour = rr[valid] * w + cc[valid]
        source = np.flatnonzero(valid)
        unknown = var[neighbour] >= 0
        rows.append(source[unknown])
        cols.append(var[neighbour[unknown]])
        vals.append(np.full(int(unknown.sum()), weight))
        rhs[source[~unknown]] -= weight * flat[neighbour[~unknown]]
    rows.append(np.arange(ids.size))
    cols.append(np.arange(ids.size))
    vals.append(-diag)
    matrix = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(ids.size, ids.size))
    solved = spsolve(matrix, rhs).reshape(ids.size, -1)
    out = flat.copy()
    out[ids] = solved + noise * rng.standard_normal(solved.shape)
    return out.reshape(image.shape).astype(image.dtype)
