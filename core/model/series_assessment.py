"""A series classified slice by slice in batches, and the series-level summary with its stated rule.

Rule: the series' tumour probability is the highest, over its slices, of 1 - P(no tumour) (the class the
card calls "notumor"); the slice where it occurs is named. Slices are ranked by that probability, most
suspicious first. A model without a no-tumour class ranks by the top probability instead (the rule says so).
Every slice goes through the same gate, calibration and prediction sets as a single scan
(`core.model.inference.assess_images`); slices the gate refuses count 0 in the ranking and are named in the summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.model.assessment import Assessment
from core.model.assessment import percent as _percent
from core.model.card import ModelCard, class_label
from core.model.gate import check_metadata
from core.model.inference import assess_images
from core.model.trust import Trust

NO_TUMOUR_NAMES = {"notumor", "notumour", "no_tumor", "no_tumour", "normal", "healthy"}




def no_tumour_class(class_names: list[str]) -> str | None:
    """The card's no-tumour class, if it has one."""
    return next((c for c in class_names if c.lower().replace("-", "_") in NO_TUMOUR_NAMES), None)


@dataclass
class SeriesResult:
    """Probabilities (slices x classes; calibrated when the model folder is), per-slice suspicion, the ranking,
    the summary and each slice's Assessment (gate answer, prediction set)."""

    class_names: list[str]
    probabilities: np.ndarray
    suspicion: np.ndarray
    rule: str
    predictions: list[Assessment] = field(default_factory=list)

    @property
    def refused(self) -> list[int]:
        """Indices (0-based) of the slices the input gate refused."""
        return [i for i, p in enumerate(self.predictions) if p.refused]

    @property
    def ranking(self) -> list[int]:
        """Slice indices (0-based), most suspicious first (ties: lower slice first)."""
        return sorted(range(len(self.suspicion)), key=lambda i: (-self.suspicion[i], i))

    @property
    def top(self) -> int:
        return self.ranking[0]

    def predicted(self, index: int) -> str | None:
        """The slice's most probable class (None for a refused slice)."""
        return self.predictions[index].predicted if self.predictions else \
            self.class_names[int(self.probabilities[index].argmax())]

    def summary(self) -> str:
        """One sentence: the series' value, the slice it comes from and the class there."""
        refused = self.refused
        if len(refused) == len(self.suspicion):
            return (f"Not classified: the input gate refused all {len(refused)} slices "
                    f"({self.predictions[0].refusal})")
        i = self.top
        note = (f" The input gate refused {len(refused)} of {len(self.suspicion)} slices (slice "
                f"{', '.join(str(j + 1) for j in refused[:10])}{'…' if len(refused) > 10 else ''}); they count 0."
                if refused else "")
        there = self.predictions[i].headline if self.predictions else class_label(self.predicted(i) or "")
        return (f"Series tumour probability {_percent(self.suspicion[i])} at slice {i + 1} of {len(self.suspicion)} "
                f"(there: {there}). Rule: {self.rule}.{note}")


def classify_series(model: Any, card: ModelCard, images: list[np.ndarray], trust: Trust | None = None,
                    modality: str | None = None) -> SeriesResult:
    """Classify decoded slices (RGB uint8) in batches through the one gate, preprocessing and inference path
    (calibrated, with prediction sets, when `trust` is given); `modality` is the series' DICOM Modality."""
    metadata = check_metadata(modality)
    names = list(card.class_names)
    predictions = assess_images(model, card, images, [f"slice {i + 1}" for i in range(len(images))], trust,
                                None if metadata is None else [metadata] * len(images))
    proba = np.array([[np.nan] * len(names) if p.refused else [p.probabilities[c] for c in names]
                      for p in predictions], np.float64)  # a refused slice has no probabilities to show
    normal = no_tumour_class(names)
    if normal is not None:
        suspicion = 1.0 - proba[:, names.index(normal)]
        rule = f"the highest tumour probability over the slices, 1 − P({class_label(normal)})"
    else:
        suspicion = proba.max(axis=1)
        rule = "the highest top-class probability over the slices (the model has no no-tumour class)"
    suspicion = np.where([p.refused for p in predictions], 0.0, np.nan_to_num(suspicion))
    return SeriesResult(names, proba, suspicion, rule, predictions)
