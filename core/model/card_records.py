"""The model card's `training` and `evaluation` parts, typed.

The card stores both as JSON objects (so a saved card reads back byte for byte); `TrainingRecord` and
`EvaluationRecord` read them into versioned dataclasses with `from_json` / `to_json`, and the pages and
tables render their attributes. A part without `schema_version` is version 1 (every card written so far); a
newer version is a ModelNotFoundError that says so. Keys a record does not model are kept in `extra` and
written back, so `to_json(from_json(d)) == d`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from core.errors import ModelNotFoundError
from core.model.trust_records import TrustRecord

CARD_PART_SCHEMA = 1
HEADLINE = ("accuracy", "loss", "macro_f1", "cohen_kappa", "macro_auc")
SPLITS = ("validation", "test", "test_leakage_free", "test_unseen")


def _versioned(raw: dict[str, Any] | None, part: str) -> tuple[int, dict[str, Any]]:
    """(the part's schema version, a copy of the part without the version field)."""
    content = dict(raw or {})
    version = content.pop("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= CARD_PART_SCHEMA:
        raise ModelNotFoundError(f"the model card's {part} has schema version {version!r}; this version reads "
                                 f"1 to {CARD_PART_SCHEMA} (a newer BrainScan wrote it)")
    return version, content


def _split_known(cls: type, raw: dict[str, Any], skip: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values of the dataclass's plain fields present in `raw`, every other key) for exact round trips."""
    names = {f.name for f in fields(cls)} - {"extra", *skip}
    return {k: v for k, v in raw.items() if k in names}, {k: v for k, v in raw.items() if k not in names}


@dataclass(frozen=True)
class Proportion:
    """k of n with its Wilson 95% interval (as `core.evaluation.external.proportion` writes it)."""

    value: float
    n: int
    k: int
    ci95: tuple[float, float] | None = None

    @classmethod
    def parse(cls, raw: Any) -> Proportion | None:
        """The proportion, or None when `raw` is missing or malformed (a table leaves such a figure out)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("value"), (int, float)) \
                or not isinstance(raw.get("n"), int) or raw["n"] <= 0:
            return None
        ci = raw.get("ci95")
        ci = tuple(ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 \
            and all(isinstance(v, (int, float)) for v in ci) else None
        k = raw["k"] if isinstance(raw.get("k"), int) else round(float(raw["value"]) * raw["n"])
        return cls(float(raw["value"]), int(raw["n"]), int(k), ci)


@dataclass(frozen=True)
class SplitResult:
    """The classification metrics of one split (bootstrap 95% intervals where computed)."""

    n: int | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)  # HEADLINE keys present in the card
    intervals: dict[str, list[float]] = field(default_factory=dict)  # "<metric>" -> [low, high]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    roc: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SplitResult:
        rest = dict(raw)
        metrics = {k: rest.pop(k) for k in HEADLINE if k in rest}
        intervals = {k: rest.pop(f"{k}_ci95") for k in HEADLINE if f"{k}_ci95" in rest}
        return cls(rest.pop("n", None), metrics, intervals, rest.pop("per_class", {}),
                   rest.pop("confusion_matrix", []), rest.pop("roc", {}), rest)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.n is None else {"n": self.n}
        out.update(self.metrics)
        out.update({"per_class": self.per_class} if self.per_class else {})
        out.update({"confusion_matrix": self.confusion_matrix} if self.confusion_matrix else {})
        out.update({"roc": self.roc} if self.roc else {})
        out.update({f"{k}_ci95": v for k, v in self.intervals.items()})
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class ExternalSet:
    """The model on one external set: the rate that matters (tumour recall or no-tumour specificity), and the
    same per imaging plane where the labels give it."""

    n: int
    tumour_recall: Proportion | None = None
    notumor_specificity: Proportion | None = None
    per_plane: dict[str, ExternalSet] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> ExternalSet | None:
        """The set's results, or None when `raw` is not a result at all."""
        if not isinstance(raw, dict):
            return None
        planes = raw.get("per_plane") if isinstance(raw.get("per_plane"), dict) else {}
        parsed = {p: ExternalSet.parse(part) for p, part in planes.items()}
        return cls(int(raw.get("n") or 0), Proportion.parse(raw.get("tumour_recall")),
                   Proportion.parse(raw.get("notumor_specificity")),
                   {p: s for p, s in parsed.items() if s is not None}, raw)


@dataclass(frozen=True)
class AuditSummary:
    """The leakage audit of the test split: totals (exact, near_only, test, leakage_free, unseen) and per class."""

    total: dict[str, int]
    per_class: dict[str, dict[str, int]]

    def count(self, key: str) -> int:
        """A total (0 when the audit did not count it)."""
        return int(self.total[key]) if key in self.total else 0


@dataclass
class EvaluationRecord:
    """`ModelCard.evaluation`: the splits' classification metrics, the leakage audit, the trust layer's
    figures (`trust`, a `TrustRecord` rendered by `ui.trust_view`) and the external sets."""

    splits: dict[str, SplitResult] = field(default_factory=dict)
    protocol: str | None = None
    seed: int | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    trust: TrustRecord | None = None
    external: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CARD_PART_SCHEMA

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> EvaluationRecord:
        version, content = _versioned(raw, "evaluation")
        splits = {s: SplitResult.from_json(content.pop(s)) for s in SPLITS if isinstance(content.get(s), dict)}
        trust = TrustRecord.from_json(content.pop("trust")) if content.get("trust") else None
        known, extra = _split_known(cls, content, ("splits", "trust", "schema_version"))
        return cls(splits, **known, trust=trust, extra=extra, schema_version=version)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": self.schema_version} if self.schema_version > 1 else {}
        out.update({k: getattr(self, k) for k in ("protocol", "seed") if getattr(self, k) is not None})
        out.update({"audit": self.audit} if self.audit else {})
        out.update({"trust": self.trust.to_json()} if self.trust is not None else {})
        out.update({"external": self.external} if self.external else {})
        out.update({s: r.to_json() for s, r in self.splits.items()})
        out.update(self.extra)
        return out

    @property
    def audit_summary(self) -> AuditSummary | None:
        """The leakage audit's counts, or None when the card has none."""
        total = self.audit.get("total") if isinstance(self.audit, dict) else None
        if not isinstance(total, dict) or not total:
            return None
        per_class = self.audit.get("per_class")
        return AuditSummary(total, per_class if isinstance(per_class, dict) else {})

    def external_sets(self) -> dict[str, ExternalSet]:
        """The external sets whose results are readable (a malformed entry is left out)."""
        if not isinstance(self.external, dict):
            return {}
        parsed = {str(name): ExternalSet.parse(result) for name, result in self.external.items()}
        return {name: s for name, s in parsed.items() if s is not None}

    def gate_refusals(self, set_name: str) -> Proportion | None:
        """The input gate's refusal rate on an external set (`trust.external`), or None when not measured."""
        entry = self.trust.external.get(set_name) if self.trust is not None else None
        if entry is None or not isinstance(entry.refused, (int, float)):
            return None
        return Proportion.parse({"value": entry.refused, "ci95": entry.refused_ci95, "n": entry.n})


@dataclass
class TrainingRecord:
    """`ModelCard.training`: the recipe (`config`) and how the run went."""

    config: dict[str, Any] = field(default_factory=dict)
    epochs_run: int | None = None
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    wall_seconds: float | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    reproduce_command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CARD_PART_SCHEMA

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> TrainingRecord:
        version, content = _versioned(raw, "training record")
        known, extra = _split_known(cls, content, ("schema_version",))
        return cls(**known, extra=extra, schema_version=version)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": self.schema_version} if self.schema_version > 1 else {}
        defaults = TrainingRecord()
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "schema_version")
                    and getattr(self, f.name) != getattr(defaults, f.name)})
        out.update(self.extra)
        return out

    @property
    def cpus(self) -> int | None:
        """CPUs of the training machine, when recorded."""
        cpus = self.machine.get("cpus") if isinstance(self.machine, dict) else None
        return cpus if isinstance(cpus, int) else None
