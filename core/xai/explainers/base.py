"""What every explainer shares: the Explanation record, the registry spec, class resolution.

An explainer is a function `run(model, image, class_index, options) -> (map, note, extras)`, where
`options` is the method's frozen `Options` dataclass;
`core.xai.explainers.explain` validates the input, resolves the class and options, times the call and
wraps the result. Nothing here mutates the caller's image.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.model.inference import predict_proba
from core.xai.options import as_dict, build


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


RunFn = Callable[[Any, np.ndarray, int, Any], tuple[np.ndarray, str, dict[str, Any]]]


OVERLAYS = ("heatmap", "signed", "regions")


@dataclass(frozen=True)
class ExplainerSpec:
    """A registry entry: everything method-specific that callers need, so that none of them names a method.

    `overlay` is the display hint (how the app and the report draw the map: a heatmap, a diverging signed map,
    or LIME's regions); `background_option` names the option that takes background scans from the training
    data ("" when the method needs none), which the model folder caches and the evaluations build."""

    name: str
    label: str
    signed: bool
    description: str
    options_type: type
    run: RunFn
    warm_up_options: dict[str, Any] = field(default_factory=dict)  # cheap options that trace the same functions
    overlay: str = "heatmap"
    background_option: str = ""

    def __post_init__(self) -> None:
        if self.overlay not in OVERLAYS:
            raise ValueError(f"overlay must be one of {OVERLAYS}, got {self.overlay!r}")

    @property
    def default_options(self) -> dict[str, Any]:
        """Every option with its default, as declared by `options_type`."""
        return as_dict(self.options_type())

    def options(self, values: dict[str, Any]) -> Any:
        """Validated options: defaults overridden by `values`."""
        return build(self.options_type, values, f"method '{self.name}'")

    def recorded(self, values: dict[str, Any]) -> dict[str, Any]:
        """The options as saved with a result: defaults overridden by `values`, as plain values (an array such
        as a SHAP background becomes a shape description, 'array(16, 128, 128, 3)')."""
        merged = {**self.default_options, **values}
        return {k: (f"array{tuple(v.shape)}" if isinstance(v, np.ndarray) else v) for k, v in merged.items()}


def resolve_class(model: Any, image: np.ndarray, class_index: int | None) -> int:
    """The class to explain: the given index (checked) or the predicted class."""
    num_classes = int(model.output_shape[-1])
    if class_index is None:
        return int(predict_proba(model, image[None])[0].argmax())
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
