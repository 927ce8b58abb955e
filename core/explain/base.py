"""What every explainer shares: the Explanation record, the spec, input checks and batched scoring.

An explainer is a function `run(model, image, class_index, options) -> (map, note, extras)`;
`core.explain.explain` validates the input, resolves the class and options, times the call and
wraps the result. Nothing here mutates the caller's image.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from core.errors import ExplainError

SCORE_BATCH = 64


@dataclass
class Explanation:
    """One explanation of one prediction: a map at input resolution and how it was made."""

    method: str
    map: np.ndarray
    class_index: int
    options: dict[str, Any]
    seconds: float
    signed: bool
    note: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def stats(self) -> dict[str, float]:
        """Summary numbers of the map (for --json and logs)."""
        m = self.map
        return {"min": float(m.min()), "max": float(m.max()), "mean": float(m.mean()),
                "positive_fraction": float((m > 0).mean())}


RunFn = Callable[[Any, np.ndarray, int, dict[str, Any]], tuple[np.ndarray, str, dict[str, Any]]]


@dataclass(frozen=True)
class ExplainerSpec:
    """A registry entry: names for the UI, whether maps are signed, defaults and the function."""

    name: str
    label: str
    signed: bool
    description: str
    default_options: dict[str, Any]
    run: RunFn
    warm_up_options: dict[str, Any] = field(default_factory=dict)  # cheap options that trace the same functions


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


def merge_options(spec: ExplainerSpec, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults overridden by `options`; an unknown option name is a user error."""
    unknown = sorted(set(options) - set(spec.default_options))
    if unknown:
        raise ExplainError(f"unknown option(s) {unknown} for method '{spec.name}'; "
                           f"valid: {sorted(spec.default_options)}")
    return {**spec.default_options, **options}


def positive_int(options: dict[str, Any], name: str, minimum: int = 1) -> int:
    """An integer option >= minimum, or ExplainError naming the value."""
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ExplainError(f"option {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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


def predict_batches(model: Any, images: np.ndarray, batch_size: int = SCORE_BATCH) -> np.ndarray:
    """Class probabilities (N, C) float64 for many images, in fixed-size batches."""
    images = np.asarray(images, np.float32)
    out = [forward(model, images[i:i + batch_size]).astype(np.float64) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]))


def resolve_class(model: Any, image: np.ndarray, class_index: int | None) -> int:
    """The class to explain: the given index (checked) or the predicted class."""
    num_classes = int(model.output_shape[-1])
    if class_index is None:
        return int(predict_batches(model, image[None])[0].argmax())
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) \
            or not 0 <= class_index < num_classes:
        raise ExplainError(f"class_index must be an integer in [0, {num_classes - 1}], got {class_index!r}")
    return int(class_index)


def normalise01(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] as float32; a constant array becomes all zeros."""
    values = np.asarray(values, np.float32)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)
