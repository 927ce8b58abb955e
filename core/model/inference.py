"""The one inference path: every consumer (classification, evaluation, explainers, XAI metrics, image
selection) gets probabilities from `predict_proba`, which runs the model's traced forward call in batches.

Also the input check for a preprocessed image, and the per-file `classify` used by the CLI and the app.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.io.images import load_for_model
from core.model.card import ModelCard

PREDICT_BATCH = 64

_FORWARD: "weakref.WeakKeyDictionary[Any, Callable]" = weakref.WeakKeyDictionary()


def _forward(model: Any) -> Callable:
    """The model's inference call traced once for any batch size (eager Keras calls are ~10x slower on CPU)."""
    fn = _FORWARD.get(model)
    if fn is None:
        import tensorflow as tf

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        _FORWARD[model] = fn
    return fn


def forward(model: Any, batch: np.ndarray) -> np.ndarray:
    """One traced inference call on a batch (any Keras model: classifier or feature extractor)."""
    return np.asarray(_forward(model)(np.asarray(batch, np.float32)))


def predict_proba(model: Any, images: np.ndarray, batch_size: int = PREDICT_BATCH,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Class probabilities (N, C) float64 for preprocessed images (N, S, S, 3) or one image (S, S, 3)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    out = []
    for start in range(0, len(images), batch_size):
        out.append(forward(model, images[start:start + batch_size]).astype(np.float64))
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    if not out:
        return np.zeros((0, model.output_shape[-1]))
    return np.concatenate(out)


def check_image(model: Any, image: np.ndarray) -> np.ndarray:
    """A float32 copy of a preprocessed (S, S, 3) image matching the model input, or ExplainError."""
    image = np.asarray(image)
    expected = tuple(model.input_shape[1:])
    if image.shape != expected:
        raise ExplainError(f"expected one preprocessed image of shape {expected} (use load_for_model), "
                           f"got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ExplainError("the image contains NaN or infinite values")
    return image.astype(np.float32, copy=True)


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
