"""Set-valued (partial) labels: a target row may mark several classes as "the answer is one of these".

A tumour slice of unknown type (`core.data.collections.PARTIAL_TUMOUR`) has every tumour class marked, and the
loss is -log(sum of the marked probabilities) = -log(1 - p(no tumour)): it teaches "not no-tumour" and leaves
the type to the 4-class data. On a one-hot row the loss is exactly categorical cross-entropy (with the same label
smoothing), and the accuracy is categorical accuracy ("the top class is one of the marked ones").
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from core.data.collections import PARTIAL_TUMOUR


def targets(labels: np.ndarray, num_classes: int, no_tumour: int) -> np.ndarray:
    """float32 (N, classes) target rows: one-hot for a class label, every tumour class for PARTIAL_TUMOUR."""
    out = np.zeros((len(labels), num_classes), np.float32)
    known = labels != PARTIAL_TUMOUR
    out[np.flatnonzero(known), labels[known]] = 1.0
    if (~known).any():
        if no_tumour < 0:
            raise ValueError("partial tumour labels need a model with a no-tumour class")
        partial = np.ones(num_classes, np.float32)
        partial[no_tumour] = 0.0
        out[~known] = partial
    return out


@functools.cache
def register() -> tuple[Any, Any]:
    """(loss class, accuracy function), registered with Keras so checkpoints that use them load."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="brainscan")
    class SetCrossentropy(keras.losses.Loss):
        """-log(sum of the marked probabilities), mixed with label smoothing's uniform term."""

        def __init__(self, label_smoothing: float = 0.0, name: str = "set_crossentropy", **kwargs: Any):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)
            y = ops.cast(y_true, "float32")
            marked = -ops.log(ops.clip(ops.sum(y * p, axis=-1), 1e-7, 1.0))
            if not self.label_smoothing:
                return marked
            uniform = -ops.mean(ops.log(p), axis=-1)
            return (1.0 - self.label_smoothing) * marked + self.label_smoothing * uniform

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    @keras.saving.register_keras_serializable(package="brainscan")
    def set_accuracy(y_true: Any, y_pred: Any) -> Any:
        top = ops.argmax(y_pred, axis=-1)
        return ops.take_along_axis(ops.cast(y_true, "float32"), ops.expand_dims(top, -1), axis=-1)[..., 0]

    return SetCrossentropy, set_accuracy


def compile_terms(label_smoothing: float) -> tuple[Any, list[Any]]:
    """(loss, metrics) for `model.compile`: the set loss and an accuracy logged as "accuracy"."""
    import keras

    loss_cls, accuracy = register()
    return loss_cls(label_smoothing), [keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")]
