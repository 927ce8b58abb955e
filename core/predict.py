"""Prediction: probabilities for preprocessed images and for files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.images import load_for_model
from core.model_card import ModelCard

PREDICT_BATCH = 64


def predict_proba(model: Any, images: np.ndarray, batch_size: int = PREDICT_BATCH,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Class probabilities (N, C) float64 for a batch of preprocessed images (N, S, S, 3)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].astype(np.float32)
        out.append(np.asarray(model.predict_on_batch(batch), np.float64))
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    if not out:
        return np.zeros((0, model.output_shape[-1]))
    return np.concatenate(out)


@dataclass
class Prediction:
    """One file's result: predicted class, probabilities by class name."""

    file: str
    predicted: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "predicted_class": self.predicted, "confidence": round(self.confidence, 6),
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


def classify(model: Any, card: ModelCard, source: str | Path | bytes, name: str | None = None) -> Prediction:
    """Decode, preprocess and classify one file (path or bytes)."""
    image = load_for_model(source, card.image_size, name)
    proba = predict_proba(model, image[None])[0]
    best = int(proba.argmax())
    return Prediction(name or str(source), card.class_names[best], float(proba[best]),
                      {c: float(p) for c, p in zip(card.class_names, proba)})
