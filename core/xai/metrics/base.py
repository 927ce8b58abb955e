"""The metric record and spec shared by every XAI metric module."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.xai.options import as_dict


@dataclass
class MetricResult:
    """One metric on one map: the value, its curve for plots (x = fraction of pixels, y = prob)."""

    value: float
    curve: tuple[np.ndarray, np.ndarray] | None
    higher_is_better: bool
    saturated: bool = False  # the removal baseline already scores like the scan: the value says nothing
    note: str = ""


ComputeFn = Callable[[Any, np.ndarray, np.ndarray, int, int, Any], MetricResult]


@dataclass(frozen=True)
class MetricSpec:
    """A registry entry: names, direction, description, the options type and the function. `plain` says what
    the metric measures in plain words and `term` is its technical name in running text; tables are headed by
    both (`ui.presentation`)."""

    name: str
    label: str
    higher_is_better: bool
    description: str
    options_type: type
    compute: ComputeFn
    plain: str = ""
    term: str = ""

    @property
    def default_options(self) -> dict[str, Any]:
        """Every option with its default, as declared by `options_type`."""
        return as_dict(self.options_type())


LocalisationFn = Callable[[np.ndarray, np.ndarray, Any], float]


@dataclass(frozen=True)
class LocalisationSpec:
    """A localisation metric: map (H, W) and expert mask (H, W bool) in, one number out; no model needed.
    `plain` and `term` as for MetricSpec."""

    name: str
    label: str
    higher_is_better: bool
    description: str
    options_type: type
    compute: LocalisationFn
    binary: bool = False  # a hit/miss per scan: summarised as a proportion with a Wilson interval
    plain: str = ""
    term: str = ""

    @property
    def default_options(self) -> dict[str, Any]:
        """Every option with its default, as declared by `options_type`."""
        return as_dict(self.options_type())


def positive_part(saliency_map: np.ndarray) -> np.ndarray:
    """The evidence for the class: max(map, 0) as float64 (signed maps keep only their positive side)."""
    return np.maximum(np.asarray(saliency_map, np.float64), 0.0)
