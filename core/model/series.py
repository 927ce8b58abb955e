"""A series classified slice by slice in batches, and the series-level summary with its stated rule.

Rule: the series' tumour probability is the highest, over its slices, of 1 - P(no tumour) (the class the
card calls "notumor"); the slice where it occurs is named. Slices are ranked by that probability, most
suspicious first. A model without a no-tumour class ranks by the top probability instead (the rule says so).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.io.images import preprocess
from core.model.card import ModelCard, class_label
from core.model.inference import predict_proba

NO_TUMOUR_NAMES = {"notumor", "notumour", "no_tumor", "no_tumour", "normal", "healthy"}


def _percent(p: float) -> str:
    """A probability as a percentage that never claims certainty (as the app words them)."""
    return ">99.9%" if p >= 0.9995 else "<0.1%" if p < 0.0005 else f"{p:.1%}"


def no_tumour_class(class_names: list[str]) -> str | None:
    """The card's no-tumour class, if it has one."""
    return next((c for c in class_names if c.lower().replace("-", "_") in NO_TUMOUR_NAMES), None)


@dataclass
class SeriesResult:
    """Probabilities (slices x classes), per-slice suspicion, the ranking and the summary."""

    class_names: list[str]
    probabilities: np.ndarray
    suspicion: np.ndarray
    rule: str

    @property
    def ranking(self) -> list[int]:
        """Slice indices (0-based), most suspicious first (ties: lower slice first)."""
        return sorted(range(len(self.suspicion)), key=lambda i: (-self.suspicion[i], i))

    @property
    def top(self) -> int:
        return self.ranking[0]

    def predicted(self, index: int) -> str:
        return self.class_names[int(self.probabilities[index].argmax())]

    def summary(self) -> str:
        """One sentence: the series' value, the slice it comes from and the class there."""
        i = self.top
        return (f"Series tumour probability {_percent(self.suspicion[i])} at slice {i + 1} of {len(self.suspicion)} "
                f"(predicted there: {class_label(self.predicted(i))}). Rule: {self.rule}.")


def classify_series(model: Any, card: ModelCard, images: list[np.ndarray]) -> SeriesResult:
    """Classify decoded slices (RGB uint8) in batches through the one preprocessing and inference path."""
    batch = np.stack([preprocess(image, card.image_size, card.crop) for image in images])
    proba = predict_proba(model, batch)
    names = list(card.class_names)
    normal = no_tumour_class(names)
    if normal is not None:
        suspicion = 1.0 - proba[:, names.index(normal)]
        rule = f"the highest tumour probability over the slices, 1 − P({class_label(normal)})"
    else:
        suspicion = proba.max(axis=1)
        rule = "the highest top-class probability over the slices (the model has no no-tumour class)"
    return SeriesResult(names, proba, suspicion, rule)
