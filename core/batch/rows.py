"""The batch Parquet's rows: one per image or series, with an explicit, versioned Arrow schema.

Columns: the item (`key`, `kind`, `sha256`, `status`, `error`, `error_type`); the assessment with exactly the
fields of `predict --json` (`Assessment.to_dict`; probabilities as a struct of the card's classes); for a series
the series-level answer (the assessment is its most suspicious slice's); per explained method the map's summary
numbers, the class explained, the overlay's path and seconds; timings and the inference engine. The schema
version and the run's settings are stored in the file's metadata (`brainscan.batch`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1
METADATA_KEY = b"brainscan.batch"
MAP_STATS = ("min", "max", "mean", "positive_fraction")
SORT_KEY = "key"
TIMING_COLUMNS = ("seconds_total", "seconds_classify")  # differ run to run; everything else is reproducible


def _assessment_fields(class_names: list[str]) -> list[pa.Field]:
    probs = pa.struct([pa.field(c, pa.float64()) for c in class_names])
    return [pa.field("file", pa.string()), pa.field("schema_version", pa.int32()), pa.field("model", pa.string()),
            pa.field("state", pa.string()), pa.field("headline", pa.string()),
            pa.field("predicted_class", pa.string()), pa.field("top_class", pa.string()),
            pa.field("confidence", pa.float64()), pa.field("probabilities", probs),
            pa.field("raw_probabilities", probs), pa.field("in_distribution", pa.bool_()),
            pa.field("decoded", pa.bool_()), pa.field("ood_score", pa.float64()), pa.field("refusal", pa.string()),
            pa.field("refusal_layer", pa.string()), pa.field("prediction_set", pa.list_(pa.string())),
            pa.field("calibrated", pa.bool_()), pa.field("warnings", pa.list_(pa.string())),
            pa.field("note", pa.string())]


def method_columns(method: str) -> list[str]:
    """The columns one explained method adds."""
    return [*(f"{method}_{s}" for s in MAP_STATS), f"{method}_class", f"{method}_overlay", f"{method}_seconds"]


def batch_schema(class_names: list[str], methods: list[str]) -> pa.Schema:
    """The Arrow schema of a batch file for a model's classes and the explained methods."""
    fields = [pa.field("key", pa.string()), pa.field("kind", pa.string()), pa.field("sha256", pa.string()),
              pa.field("status", pa.string()), pa.field("error", pa.string()), pa.field("error_type", pa.string()),
              *_assessment_fields(class_names),
              pa.field("n_slices", pa.int32()), pa.field("series_top_slice", pa.int32()),
              pa.field("series_probability", pa.float64()), pa.field("series_refused_slices", pa.int32()),
              pa.field("series_summary", pa.string())]
    for method in methods:
        fields += [pa.field(f"{method}_{s}", pa.float64()) for s in MAP_STATS]
        fields += [pa.field(f"{method}_class", pa.string()), pa.field(f"{method}_overlay", pa.string()),
                   pa.field(f"{method}_seconds", pa.float64())]
    fields += [pa.field(c, pa.float64()) for c in TIMING_COLUMNS] + [pa.field("engine", pa.string())]
    return pa.schema(fields)


@dataclass(frozen=True)
class BatchSettings:
    """What makes two runs' rows interchangeable (a resume reuses parts only under equal settings)."""

    model: str
    model_sha256: str
    class_names: tuple[str, ...]
    calibrated: bool
    methods: tuple[str, ...]
    overlays: bool
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BatchSettings:
        data = json.loads(text)
        return cls(**{**data, "class_names": tuple(data["class_names"]), "methods": tuple(data["methods"])})


@dataclass(frozen=True)
class BatchSummary:
    """The end-of-job summary: counts per verdict and refusals by reason, errors, throughput."""

    rows: int
    done_now: int
    reused: int
    errors: int
    skipped_files: int
    states: dict[str, int] = field(default_factory=dict)
    predicted: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    items_per_second: float | None = None
    workers: int = 1
    address: str = "local"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BatchSummary:
        return cls(**json.loads(text))

    def lines(self) -> list[str]:
        """The summary as a few human-readable lines."""
        rate = "n/a" if self.items_per_second is None else f"{self.items_per_second:.2f} items/s"
        out = [f"{self.rows} rows ({self.done_now} scored now, {self.reused} reused from an earlier run, "
               f"{self.errors} errors, {self.skipped_files} files passed over); {self.wall_seconds:.1f} s, {rate} "
               f"on {self.workers} worker(s) at {self.address}",
               "verdicts: " + (", ".join(f"{k} {v}" for k, v in sorted(self.states.items())) or "none"),
               "most probable class (not refused): " + (", ".join(f"{k} {v}" for k, v in
                                                                  sorted(self.predicted.items())) or "none")]
        out += [f"refused ({n}): {reason}" for reason, n in sorted(self.refusals.items(), key=lambda kv: -kv[1])]
        out += [f"errors ({n}): {kind}" for kind, n in sorted(self.error_types.items())]
        return out


def record_from_assessment(assessment: Any) -> dict[str, Any]:
    """The assessment's `to_dict()` as row values (the note is null when calibrated)."""
    values = assessment.to_dict()
    values.setdefault("note", None)
    return values


def error_record(key: str, kind: str, sha256: str, exc: BaseException | str) -> dict[str, Any]:
    """A row for an item that could not be scored: the reason, no assessment."""
    message = exc if isinstance(exc, str) else str(exc)
    kind_name = "CaseError" if isinstance(exc, str) else type(exc).__name__
    return {"key": key, "kind": kind, "sha256": sha256, "status": "error", "error": message,
            "error_type": kind_name, "file": key}
