"""Confidence intervals, one home for the whole engine: Wilson for proportions, a t-interval for means, the
seeded percentile bootstrap for everything else. Every function returns an `Interval` (or None where the
interval is undefined); callers decide how to round and store it."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A two-sided 95% interval."""

    low: float
    high: float

    def to_list(self, digits: int | None = None) -> list[float]:
        """[low, high] as plain floats, rounded to `digits` when given (the form saved in JSON documents)."""
        values = [float(self.low), float(self.high)]
        return values if digits is None else [round(v, digits) for v in values]


def wilson(successes: int, n: int) -> Interval | None:
    """The Wilson score interval of successes/n (no continuity correction); None when n = 0.

    Wilson rather than the normal approximation because it stays inside [0, 1] and keeps its coverage for
    small n and rates near 0 or 1 (a t-interval on 0.02 can read [-0.008, 0.048])."""
    from scipy.stats import binomtest

    if n == 0:
        return None
    ci = binomtest(int(successes), int(n)).proportion_ci(CONFIDENCE, method="wilson")
    return Interval(float(ci.low), float(ci.high))


def mean_interval(values: Iterable[float | None]) -> tuple[float | None, Interval | None, int]:
    """(mean, t-interval, n) of the finite values; None/NaN values are left out (undefined, e.g. a constant
    map). One value gives a zero-width interval; none gives (None, None, 0)."""
    from scipy.stats import t

    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if data.size == 0:
        return None, None, 0
    mean = float(data.mean())
    if data.size == 1:
        return mean, Interval(mean, mean), 1
    half = float(t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    return mean, Interval(mean - half, mean + half), int(data.size)


def bootstrap(statistic: Callable[..., T], sizes: int | Sequence[int], rounds: int, seed: int = 0) -> list[T]:
    """`statistic` on `rounds` seeded resamples: per round, one index array drawn with replacement per sample
    size (so a two-sample statistic gets two arrays), in that order, from one generator."""
    sizes = (sizes,) if isinstance(sizes, int) else tuple(sizes)
    rng = np.random.default_rng(seed)
    return [statistic(*(rng.integers(0, size, size) for size in sizes)) for _ in range(rounds)]


def percentile_interval(values: Sequence[float] | np.ndarray) -> Interval:
    """The percentile 95% interval of bootstrap values."""
    return Interval(float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


__all__ = ["CONFIDENCE", "Interval", "bootstrap", "mean_interval", "percentile_interval", "wilson"]
