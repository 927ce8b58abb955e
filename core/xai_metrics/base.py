"""The metric record and spec shared by every XAI metric module."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass
class MetricResult:
    """One metric on one map: the value, its curve for plots (x = fraction of pixels, y = prob)."""

    value: float
    curve: tuple[np.ndarray, np.ndarray] | None
    higher_is_better: bool


ComputeFn = Callable[[Any, np.ndarray, np.ndarray, int, int, dict[str, Any]], MetricResult]


@dataclass(frozen=True)
class MetricSpec:
    """A registry entry: names, direction, description, default options and the function."""

    name: str
    label: str
    higher_is_better: bool
    description: str
    default_options: dict[str, Any]
    compute: ComputeFn
