"""ROAD (Rong et al., ICML 2022): RemOve And Debias, with noisy linear imputation.

Deletion with a black or blurred baseline leaks the shape of the removed region (the model sees a hole
shaped like the explanation). ROAD fills the removed pixels by noisy linear imputation from their
neighbours instead, so the removal itself carries little class information. For each fraction in
`fractions` the pixels are removed in one of two orders and the target probability is recorded:

- MoRF (most relevant first): a faithful map makes the probability fall fast; better when LOWER.
- LeRF (least relevant first): removing the irrelevant pixels should keep the probability; better when HIGHER.

The score is the trapezoid area under the (fraction, probability) curve with the fractions rescaled to
[0, 1] (the default 0.1-0.9 span becomes 0-1), so it is a probability-weighted mean over the removal range
that weighs the two end fractions half; with a single fraction it is that fraction's probability.

Ties in the map (LIME's superpixels) are broken at random (seeded), not in raster order. The noise is
`noise` times the 0-255 range (ROAD's 0.01 on [0, 1] images).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.model.inference import predict_proba
from core.xai.metrics.base import MetricResult
from core.xai.metrics.faithfulness.perturbation import auc, noisy_linear_imputation
from core.xai.options import int_at_least

DEFAULT_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class Options:
    """fractions: shares of pixels removed (each in (0, 1)); noise: imputation noise as a share of 255;
    batch_size: images per forward call."""

    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    noise: float = 0.01
    batch_size: int = 64

    def __post_init__(self) -> None:
        fractions = tuple(self.fractions)
        if not fractions or any(not 0.0 < float(f) < 1.0 for f in fractions):
            raise ExplainError(f"option fractions must be values in (0, 1), got {self.fractions!r}")
        if not 0.0 <= float(self.noise) < 1.0:
            raise ExplainError(f"option noise must be in [0, 1), got {self.noise!r}")
        int_at_least("batch_size", self.batch_size)


def order(saliency_map: np.ndarray, most_relevant_first: bool, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices by attribution (descending for MoRF, ascending for LeRF), ties broken at random."""
    values = np.asarray(saliency_map, np.float64).ravel()
    jitter = rng.random(values.size)
    keys = (-values if most_relevant_first else values, jitter)
    return np.lexsort(keys[::-1])


def road_curve(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
               options: Options, most_relevant_first: bool) -> tuple[np.ndarray, np.ndarray]:
    """(fractions, probabilities) of the target class with the given shares of pixels imputed."""
    rng = np.random.default_rng(seed)
    ranked = order(saliency_map, most_relevant_first, rng)
    h, w = saliency_map.shape
    frames = []
    fractions = np.asarray(sorted(float(f) for f in options.fractions))
    for fraction in fractions:
        removed = np.zeros(h * w, bool)
        removed[ranked[:int(round(fraction * h * w))]] = True
        frames.append(noisy_linear_imputation(image, removed.reshape(h, w), 255.0 * options.noise, rng))
    probs = predict_proba(model, np.stack(frames).astype(np.float32), options.batch_size)[:, class_index]
    return fractions, probs


def _score(fractions: np.ndarray, probs: np.ndarray) -> float:
    """Trapezoid area under the curve over the fractions rescaled to [0, 1]; one fraction: its probability."""
    return float(probs.mean()) if fractions.size < 2 else auc((fractions - fractions[0]) /
                                                            (fractions[-1] - fractions[0]), probs)


def compute_morf(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
                 options: Options) -> MetricResult:
    """ROAD, most relevant pixels imputed first: the area under the probability curve (lower is better)."""
    fractions, probs = road_curve(model, image, saliency_map, class_index, seed, options, True)
    return MetricResult(_score(fractions, probs), (fractions, probs), False)


def compute_lerf(model: Any, image: np.ndarray, saliency_map: np.ndarray, class_index: int, seed: int,
                 options: Options) -> MetricResult:
    """ROAD, least relevant pixels imputed first: the area under the probability curve (higher is better)."""
    fractions, probs = road_curve(model, image, saliency_map, class_index, seed, options, False)
    return MetricResult(_score(fractions, probs), (fractions, probs), True)
