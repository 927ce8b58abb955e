"""Where a batch keeps its work: part files per finished batch, then one merged Parquet file.

Parts live in `.<out name>.parts/<settings hash>/` beside the output, each written atomically
(`core.io.atomic`), so a killed job loses at most the batches in flight and a rerun with the same settings
skips every content hash already in a part. The merge takes, for every input item sorted by key, the row of
its content hash (identical files are scored once; each keeps its own key), and writes the output atomically.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.batch.inputs import WorkItem
from core.batch.rows import METADATA_KEY, BatchSettings, batch_schema
from core.errors import BatchError
from core.io.atomic import atomic_open


def parts_dir(out: Path, settings: BatchSettings) -> Path:
    """The part-file folder of an output under these settings."""
    digest = hashlib.sha256(settings.to_json().encode()).hexdigest()[:12]
    return out.parent / f".{out.name}.parts" / digest


def _schema(settings: BatchSettings) -> pa.Schema:
    schema = batch_schema(list(settings.class_names), list(settings.methods))
    return schema.with_metadata({METADATA_KEY: settings.to_json().encode()})


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise BatchError(f"{path}: unreadable part file ({exc}); delete it and rerun") from exc


def done_hashes(folder: Path) -> set[str]:
    """Content hashes already scored in the part files of `folder`."""
    done: set[str] = set()
    for path in sorted(folder.glob("part-*.parquet")):
        done.update(_read(path, ["sha256"]).column("sha256").to_pylist())
    return done


def write_part(folder: Path, records: list[dict], settings: BatchSettings) -> Path:
    """One finished batch as a part file named by its content hashes (atomic: whole or absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    schema = _schema(settings)
    table = pa.Table.from_pylist([{name: r.get(name) for name in schema.names} for r in records], schema=schema)
    digest = hashlib.sha256(",".join(sorted(r["sha256"] for r in records)).encode()).hexdigest()[:16]
    path = folder / f"part-{digest}.parquet"
    with atomic_open(path, "wb") as handle:
        pq.write_table(table, handle)
    return path


def merge(folder: Path, items: list[WorkItem], out: Path, settings: BatchSettings) -> pa.Table:
    """The output table: one row per item (sorted by key) from the parts, written atomically to `out`."""
    schema = _schema(settings)
    paths = sorted(folder.glob("part-*.parquet"))
    table = pa.concat_tables([_read(p).cast(schema) for p in paths]) if paths else schema.empty_table()
    first: dict[str, int] = {}
    for index, sha in enumerate(table.column("sha256").to_pylist()):
        first.setdefault(sha, index)
    missing = [i.key for i in items if i.sha256 not in first]
    if missing:
        raise BatchError(f"{len(missing)} items have no row yet (e.g. {missing[0]}); rerun the same command")
    ordered = sorted(items, key=lambda i: i.key)
    rows = table.take(pa.array([first[i.sha256] for i in ordered], pa.int64()))
    keys = pa.array([i.key for i in ordered], pa.string())
    rows = rows.set_column(schema.get_field_index("key"), "key", keys)
    rows = rows.set_column(schema.get_field_index("file"), "file", keys).replace_schema_metadata(schema.metadata)
    with atomic_open(out, "wb") as handle:
        pq.write_table(rows, handle)
    return rows


def read_settings(path: Path) -> BatchSettings:
    """The settings a batch Parquet file was made with (from its metadata)."""
    metadata = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in metadata:
        raise BatchError(f"{path} is not a batch result (no {METADATA_KEY.decode()} metadata)")
    return BatchSettings.from_json(metadata[METADATA_KEY].decode())
