"""The model card's `evaluation.trust` part, typed: calibration, conformal sets, risk-coverage curves and the
input gate's refusals as `core.evaluation.trust_eval` writes them.

Every record reads a JSON object with `from_json` (absent parts stay None or empty, so a page can say what is
missing) and writes it back with `to_json`. A record remembers the order of the keys it read and keeps keys it
does not model in `extra`, so `to_json(from_json(d)) == d`, key order and nulls included. The part is versioned
with the evaluation part that holds it (`card_records.EvaluationRecord.schema_version`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cache
from types import UnionType
from typing import Any, Self, get_args, get_origin, get_type_hints

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]
_UNMODELLED = ("extra", "json_keys")


def _interval(raw: Any) -> tuple[float, float] | None:
    """A [low, high] pair as read (an integer bound stays one, so it writes back the same)."""
    return (raw[0], raw[1]) if isinstance(raw, (list, tuple)) and len(raw) == 2 \
        and all(isinstance(v, (int, float)) for v in raw) else None


INTERVAL: Codec = (_interval, list)


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, JsonRecord)


def _codec(hint: Any) -> Codec | None:
    """How a field of this type hint reads and writes: a record, an interval, a tuple of records, records by name
    (class, external set); None for plain JSON values."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is UnionType:
        inner = [a for a in args if a is not type(None)]
        return _codec(inner[0]) if len(inner) == 1 else None
    if _is_record(hint):
        return hint.from_json, hint.to_json
    if origin is tuple and args == (float, float):
        return INTERVAL
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and _is_record(args[0]):
        return (lambda raw: tuple(args[0].from_json(r) for r in raw) if isinstance(raw, list) else (),
                lambda records: [r.to_json() for r in records])
    if origin is dict and _is_record(args[1]):
        return (lambda raw: {str(k): args[1].from_json(r) for k, r in raw.items()} if isinstance(raw, dict) else {},
                lambda records: {k: r.to_json() for k, r in records.items()})
    return None


@cache
def _codecs(cls: type) -> dict[str, Codec]:
    """The fields of a record that are not plain JSON values, with their codecs (from the type hints)."""
    hints = get_type_hints(cls)
    found = {f.name: _codec(hints[f.name]) for f in fields(cls) if f.name not in _UNMODELLED}
    return {name: codec for name, codec in found.items() if codec is not None}


@dataclass(frozen=True)
class JsonRecord:
    """Exact JSON round trips for a frozen dataclass; fields typed as records, intervals, tuples of records or
    records by name are read and written as such. `extra`: the keys read that no field models; `json_keys`: the
    keys read, in their order."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)
    json_keys: tuple[str, ...] = field(default=(), repr=False, compare=False, kw_only=True)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """The record of a JSON object (a missing or malformed one reads as an empty record)."""
        raw = raw if isinstance(raw, dict) else {}
        codecs, names = _codecs(cls), {f.name for f in fields(cls)} - set(_UNMODELLED)
        values = {k: codecs[k][0](v) if k in codecs else v for k, v in raw.items() if k in names}
        return cls(**values, extra={k: v for k, v in raw.items() if k not in names}, json_keys=tuple(raw))

    def to_json(self) -> dict[str, Any]:
        """The JSON object: the keys read, in their order; a record built in code writes its set fields."""
        keys = self.json_keys or (*(f.name for f in fields(self)
                                    if f.name not in _UNMODELLED and getattr(self, f.name) is not None), *self.extra)
        return {k: self._dump(k) for k in keys}

    def _dump(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        value, codecs = getattr(self, key), _codecs(type(self))
        return codecs[key][1](value) if key in codecs and value is not None else value


@dataclass(frozen=True)
class ReliabilityBin(JsonRecord):
    """One confidence bin of a reliability diagram."""

    lo: float | None = None
    hi: float | None = None
    confidence: float | None = None
    accuracy: float | None = None
    n: int = 0


@dataclass(frozen=True)
class Calibration(JsonRecord):
    """ECE / NLL / Brier (bootstrap 95% intervals overall), per class, and the reliability bins."""

    reliability: tuple[ReliabilityBin, ...] = ()
    n: int | None = None
    ece: float | None = None
    nll: float | None = None
    brier: float | None = None
    per_class: dict[str, Calibration] = field(default_factory=dict)
    ece_ci95: tuple[float, float] | None = None
    nll_ci95: tuple[float, float] | None = None
    brier_ci95: tuple[float, float] | None = None


@dataclass(frozen=True)
class Conformal(JsonRecord):
    """Coverage, mean set size and single-class answers of the conformal sets, overall and per class."""

    per_class: dict[str, Conformal] = field(default_factory=dict)
    n: int | None = None
    coverage_ci95: tuple[float, float] | None = None
    coverage: float | None = None
    mean_set_size: float | None = None
    single_share_ci95: tuple[float, float] | None = None
    single_share: float | None = None
    single_accuracy_ci95: tuple[float, float] | None = None
    single_accuracy: float | None = None
    empty_share: float | None = None


@dataclass(frozen=True)
class SplitTrust(JsonRecord):
    """Calibration before and after temperature scaling, and the conformal sets, on one test split."""

    calibration_before: Calibration | None = None
    calibration_after: Calibration | None = None
    conformal: Conformal | None = None


@dataclass(frozen=True)
class CurvePoint(JsonRecord):
    """A point of a risk-coverage curve: the share answered and their accuracy, at a conformal coverage level
    (`confidence`) or a top-probability `threshold`."""

    confidence: float | None = None
    threshold: float | None = None
    answered: float | None = None
    accuracy: float | None = None


@dataclass(frozen=True)
class RiskCoverage(JsonRecord):
    """The risk-coverage curves of the test split."""

    conformal: tuple[CurvePoint, ...] = ()
    top_probability: tuple[CurvePoint, ...] = ()


@dataclass(frozen=True)
class FalseRefusals(JsonRecord):
    """The gate's refusals of Testing scans (which it should accept)."""

    by_layer: dict[str, int] = field(default_factory=dict)
    n: int | None = None
    refused: int | None = None
    rate_ci95: tuple[float, float] | None = None
    rate: float | None = None


@dataclass(frozen=True)
class GateOnSet(JsonRecord):
    """The gate on one external set: the share refused and how well its score tells the set from Testing scans."""

    roc: list[list[float]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    refused_ci95: tuple[float, float] | None = None
    auroc_ci95: tuple[float, float] | None = None
    n: int | None = None
    refused: float | None = None
    auroc: float | None = None
    fpr_at_95tpr: float | None = None
    by_layer: dict[str, int] = field(default_factory=dict)
    accepted_answers: dict[str, int] = field(default_factory=dict)
    skipped: int | None = None


TRUST_SPLITS = ("test", "test_leakage_free", "test_unseen")


@dataclass(frozen=True)
class TrustRecord(JsonRecord):
    """`ModelCard.evaluation["trust"]`: the fitted trust layer (gate score and threshold, temperature, conformal
    coverage, how it was fitted) and its figures per test split, on the risk-coverage curves and external sets."""

    fitted: dict[str, Any] = field(default_factory=dict)
    gate_score: str | None = None
    gate_threshold: float | None = None
    temperature: float | None = None
    confidence: float | None = None
    skipped: int | None = None
    test_false_refusal: FalseRefusals | None = None
    external: dict[str, GateOnSet] = field(default_factory=dict)
    test: SplitTrust | None = None
    test_leakage_free: SplitTrust | None = None
    test_unseen: SplitTrust | None = None
    risk_coverage: RiskCoverage | None = None

    def split(self, name: str) -> SplitTrust | None:
        """The figures of one test split ("test", "test_leakage_free", "test_unseen"), or None when absent."""
        return getattr(self, name) if name in TRUST_SPLITS else None
