"""The saved XAI result documents, typed: the evaluation (`xai_eval.json`) and the localisation record
(`xai_localisation.json`).

Each document is a versioned dataclass with `from_json` / `to_json`; `to_json(from_json(d))` gives `d` back,
so a document is written exactly as the evaluation made it and pages read attributes, not key chains. A file
without `schema_version` is version 1 (written before the field existed); a file from a newer version, or one
missing what a table needs, is an ExplainError naming the command that rewrites it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import ExplainError

XAI_EVAL_SCHEMA = 2  # 2: metric options per metric (1: one flat namespace)
LOCALISATION_SCHEMA = 2  # 2: the record carries its version (1: files without the field)
RERUN_EVAL = "rerun `python -m core xai-eval`"
RERUN_LOCALISATION = "rerun `python -m core xai-eval --localisation`"
NOT_METRICS = ("kind", "label", "per_class", "sanity_rank_correlation", "seconds_per_image")


def _check_version(raw: Any, newest: int, what: str, rerun: str) -> int:
    """The document's schema version (1 when absent); an ExplainError for a non-object or a newer version."""
    if not isinstance(raw, dict):
        raise ExplainError(f"this is not {what} (a JSON object was expected); {rerun}")
    version = raw.get("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= newest:
        raise ExplainError(f"{what} has schema version {version!r}; this version reads 1 to {newest}; {rerun}")
    return version


@dataclass(frozen=True)
class MeanCI:
    """A mean with its 95% interval over `n` values (all None when no value was defined); `saturated` counts
    curves left out of a deletion/insertion mean (None where the figure has no such count)."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    saturated: int | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MeanCI:
        low, high = raw.get("ci95") or (None, None)
        return cls(raw["mean"], low, high, int(raw.get("n", 0)), raw.get("saturated"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean": self.mean, "ci95": [self.low, self.high], "n": self.n}
        if self.saturated is not None:
            out["saturated"] = self.saturated
        return out


@dataclass(frozen=True)
class MetricInfo:
    """How a saved metric was declared when the document was written."""

    label: str
    higher_is_better: bool
    description: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MetricInfo:
        return cls(raw["label"], bool(raw["higher_is_better"]), raw.get("description", ""))

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "higher_is_better": self.higher_is_better, "description": self.description}


@dataclass(frozen=True)
class MapSummary:
    """One method or reference map of the XAI evaluation: each metric's mean [CI], sanity, time, class means."""

    kind: str
    label: str
    metrics: dict[str, MeanCI]
    seconds_per_image: MeanCI | None
    sanity_rank_correlation: MeanCI | None = None
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, name: str, raw: dict[str, Any]) -> MapSummary:
        sanity, seconds = raw.get("sanity_rank_correlation"), raw.get("seconds_per_image")
        return cls(raw.get("kind", "method"), raw.get("label", name),
                   {k: MeanCI.from_json(v) for k, v in raw.items() if k not in NOT_METRICS},
                   None if seconds is None else MeanCI.from_json(seconds),
                   None if sanity is None else MeanCI.from_json(sanity), raw.get("per_class", {}))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "label": self.label,
                               **{k: v.to_json() for k, v in self.metrics.items()}}
        if self.sanity_rank_correlation is not None:
            out["sanity_rank_correlation"] = self.sanity_rank_correlation.to_json()
        if self.seconds_per_image is not None:
            out["seconds_per_image"] = self.seconds_per_image.to_json()
        out["per_class"] = self.per_class
        return out


@dataclass
class XaiEvaluation:
    """`xai_eval.json`: the explainers and reference maps scored by every faithfulness metric on test scans.
    `settings` is the record of how (options, sample, baselines) and is shown as written."""

    methods: dict[str, MapSummary]
    model: str = ""
    n_images: int = 0
    seed: int = 0
    created: str = ""
    command: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    schema_version: int = XAI_EVAL_SCHEMA

    @classmethod
    def from_json(cls, raw: Any) -> XaiEvaluation:
        """The document from parsed JSON; ExplainError when it is not one this version can read."""
        version = _check_version(raw, XAI_EVAL_SCHEMA, "the XAI evaluation", RERUN_EVAL)
        methods = raw.get("methods")
        if not isinstance(methods, dict) or not all(isinstance(m, dict) for m in methods.values()):
            raise ExplainError(f"the file is not an XAI evaluation (no 'methods' table); {RERUN_EVAL}")
        try:
            return cls({k: MapSummary.from_json(k, v) for k, v in methods.items()}, raw.get("model", ""),
                       int(raw.get("n_images", 0)), int(raw.get("seed", 0)), raw.get("created", ""),
                       raw.get("command", ""), raw.get("settings", {}),
                       {k: MetricInfo.from_json(v) for k, v in raw.get("metrics", {}).items()}, version)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ExplainError(f"the XAI evaluation is incomplete ({type(exc).__name__}: {exc}); {RERUN_EVAL}") from exc

    def to_json(self) -> dict[str, Any]:
        """The document as written (version 1 files come back without the field they never had)."""
        out: dict[str, Any] = {"schema_version": self.schema_version} if self.schema_version > 1 else {}
        out.update({"model": self.model, "n_images": self.n_images, "seed": self.seed, "created": self.created,
                    "command": self.command, "settings": self.settings,
                    "metrics": {k: v.to_json() for k, v in self.metrics.items()},
                    "methods": {k: v.to_json() for k, v in self.methods.items()}})
        return out

    @property
    def baselines(self) -> list[str]:
        """Labels of the reference maps (what a map with no knowledge of the model scores)."""
        return [m.label for m in self.methods.values() if m.kind == "baseline"]


@dataclass(frozen=True)
class SubsetSummary:
    """One subset of the localisation record: scans, scans per class, mask area, and per map, metric and class
    ("all" and each class) the mean [CI]."""

    n: int
    per_class_n: dict[str, int]
    mask_area: MeanCI
    maps: dict[str, dict[str, dict[str, MeanCI]]]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SubsetSummary:
        return cls(int(raw["n"]), dict(raw["per_class_n"]), MeanCI.from_json(raw["mask_area"]),
                   {name: {metric: {c: MeanCI.from_json(v) for c, v in per.items()} for metric, per in m.items()}
                    for name, m in raw["maps"].items()})

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "per_class_n": self.per_class_n, "mask_area": self.mask_area.to_json(),
                "maps": {name: {metric: {c: v.to_json() for c, v in per.items()} for metric, per in m.items()}
                         for name, m in self.maps.items()}}


# the localisation record's fields in file order, with the default a missing one gets
_LOCALISATION_FIELDS = {"model": "", "split": "Testing", "n_images": 0, "n_requested": 0, "budget_minutes": None,
                        "seed": 0, "command": "", "explained_class": "", "unseen_definition": "", "methods": [],
                        "method_labels": {}, "method_options": {}, "checkpoint": None, "references": {}}


@dataclass
class LocalisationRecord:
    """`xai_localisation.json`: do the maps point at the tumour (expert masks), with ROAD, per subset.
    `records` are the per-scan values the summaries were computed from."""

    summary: dict[str, SubsetSummary]
    metrics: dict[str, MetricInfo]
    model: str = ""
    split: str = "Testing"
    n_images: int = 0
    n_requested: int = 0
    budget_minutes: float | None = None
    seed: int = 0
    command: str = ""
    explained_class: str = ""
    unseen_definition: str = ""
    methods: list[str] = field(default_factory=list)
    method_labels: dict[str, str] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint: str | None = None
    references: dict[str, str] = field(default_factory=dict)
    records_reused: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = LOCALISATION_SCHEMA
    engine: str = ""

    @classmethod
    def from_json(cls, raw: Any) -> LocalisationRecord:
        """The record from parsed JSON; ExplainError when it is not one this version can read."""
        version = _check_version(raw, LOCALISATION_SCHEMA, "the localisation record", RERUN_LOCALISATION)
        try:
            return cls({k: SubsetSummary.from_json(v) for k, v in raw["summary"].items()},
                       {k: MetricInfo.from_json(v) for k, v in raw["metrics"].items()},
                       **{k: raw.get(k, default) for k, default in _LOCALISATION_FIELDS.items()},
                       records_reused=int(raw.get("records_reused", 0)),
                       wall_seconds=float(raw.get("wall_seconds", 0.0)), cpu_seconds=float(raw.get("cpu_seconds", 0.0)),
                       records=list(raw.get("records", [])), schema_version=version,
                       engine=str(raw.get("engine", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ExplainError(f"the localisation record is incomplete ({type(exc).__name__}: {exc}); "
                               f"{RERUN_LOCALISATION}") from exc

    def to_json(self) -> dict[str, Any]:
        """The record as written (the version field only from version 2 on: version 1 files never had it)."""
        out: dict[str, Any] = {"schema_version": self.schema_version} if self.schema_version > 1 else {}
        out.update({k: getattr(self, k) for k in _LOCALISATION_FIELDS})
        out["metrics"] = {k: v.to_json() for k, v in self.metrics.items()}
        out.update({"records_reused": self.records_reused, "wall_seconds": self.wall_seconds,
                    "cpu_seconds": self.cpu_seconds})
        out.update({"engine": self.engine} if self.engine else {})  # the forward-pass engine; older files lack it
        out.update({"summary": {k: v.to_json() for k, v in self.summary.items()}, "records": self.records})
        return out
