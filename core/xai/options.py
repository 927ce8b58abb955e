"""Typed options for explainers and XAI metrics.

Each method or metric module declares a frozen dataclass `Options`: its fields and defaults are the
documentation, its `__post_init__` validates once (with the helpers below), and callers pass plain
keyword arguments that `build` turns into an instance, naming the valid fields when one is unknown.
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np

from core.errors import ExplainError

T = TypeVar("T")


def int_at_least(name: str, value: Any, minimum: int = 1) -> None:
    """ExplainError unless `value` is an integer >= minimum (bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ExplainError(f"option {name} must be an integer >= {minimum}, got {value!r}")


def one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """ExplainError unless `value` is one of `choices`."""
    if value not in choices:
        raise ExplainError(f"option {name} must be one of {choices}, got {value!r}")


def in_open_interval(name: str, value: Any, low: float, high: float) -> None:
    """ExplainError unless low < value < high."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not low < value < high:
        raise ExplainError(f"option {name} must be in ({low:g}, {high:g}), got {value!r}")


def field_names(options_type: type) -> list[str]:
    """The option names a dataclass declares."""
    return [f.name for f in dataclasses.fields(options_type)]


def build(options_type: type[T], options: dict[str, Any], owner: str) -> T:
    """An `options_type` from keyword values; an unknown name is an ExplainError listing the valid ones."""
    valid = field_names(options_type)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ExplainError(f"unknown option(s) {unknown} for {owner}; valid: {sorted(valid)}")
    return options_type(**options)


def as_dict(options: Any) -> dict[str, Any]:
    """The options as a flat dict (no deep copy: a SHAP background array stays one object)."""
    return {name: getattr(options, name) for name in field_names(type(options))}
