"""The batch job: collect inputs, skip what earlier runs did, score the rest on Ray, merge, summarise.

`run_batch` is what `python -m core batch` calls. `workers=0` scores in this process without Ray (for
debugging and for measuring Ray's overhead); otherwise Ray Data's actor pool does (`core.batch.cluster`).
After every finished batch its overlays and then its part file are written, and `progress(done, total)` is
called; an exception there (Ctrl-C, a test's simulated kill) stops the job with every written part kept.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from core.batch.inputs import WorkItem, collect
from core.batch.rows import BatchSettings, BatchSummary, error_record
from core.batch.store import done_hashes, merge, parts_dir, write_part
from core.errors import BatchError
from core.io.atomic import atomic_write_bytes, atomic_write_text

Progress = Callable[[int, int], None]
DEFAULT_BATCH = 16


@dataclass(frozen=True)
class BatchOptions:
    """What to compute and where: methods to explain, overlays folder, Ray address, workers, batch size."""

    model_dir: str
    methods: tuple[str, ...] = ()
    overlays_dir: str | None = None
    address: str | None = None
    workers: int | None = None
    batch_size: int = DEFAULT_BATCH
    verbose: bool = False


def batch_settings(options: BatchOptions) -> BatchSettings:
    """The settings that key the part files: the model's identity and weights hash, methods, overlays."""
    from core.model.card import load_card

    model_dir = Path(options.model_dir)
    card = load_card(model_dir)
    weights = model_dir / (card.model_file or "model.keras")
    if not weights.is_file():
        raise BatchError(f"{weights}: the model file is missing")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    calibrated = (model_dir / "trust.json").is_file()
    return BatchSettings(card.name, digest, tuple(card.class_names), calibrated, tuple(options.methods),
                         options.overlays_dir is not None)


def _local_batches(items: list[WorkItem], options: BatchOptions) -> Iterator[list]:
    from core.batch.worker import Scorer

    scorer = Scorer(options.model_dir, options.methods, options.overlays_dir is not None)
    for start in range(0, len(items), options.batch_size):
        yield [scorer.score(item) for item in items[start:start + options.batch_size]]


def _save_overlays(records: list, folder: Path | None) -> list[dict]:
    rows = []
    for record, overlays in records:
        for method, png in overlays.items():
            path = folder / f"{record['sha256'][:16]}-{method}.png"
            atomic_write_bytes(path, png)
            record[f"{method}_overlay"] = str(path)
        rows.append(record)
    return rows


def summarise(table: pa.Table, done_now: int, reused: int, skipped: int, seconds: float, workers: int,
              address: str) -> BatchSummary:
    """Counts per verdict, per most probable class and per refusal reason; errors by type; throughput."""
    rows = table.to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    return BatchSummary(
        rows=len(rows), done_now=done_now, reused=reused,
        errors=len(rows) - len(ok), skipped_files=skipped, states=dict(Counter(r["state"] for r in ok)),
        predicted=dict(Counter(r["top_class"] for r in ok if r["top_class"])),
        refusals=dict(Counter(r["refusal"] for r in ok if r["refusal"])),
        error_types=dict(Counter(r["error_type"] for r in rows if r["status"] != "ok")),
        wall_seconds=round(seconds, 2), items_per_second=round(done_now / seconds, 3) if done_now else None,
        workers=workers, address=address)


def _execute(todo: list[WorkItem], options: BatchOptions) -> tuple[Iterator[list], int, str, bool]:
    """The batch iterator for the chosen backend, its worker count, address and whether Ray was started here."""
    if options.workers == 0:
        return _local_batches(todo, options), 0, "in-process (no Ray)", False
    from core.batch.cluster import connect, plan, ray_batches

    started = connect(options.address, options.verbose)
    chosen = plan(options.workers, options.address)
    batches = ray_batches(todo, options.model_dir, options.methods, options.overlays_dir is not None, chosen,
                          options.batch_size)
    return batches, chosen.workers, chosen.address, started


def run_batch(inputs: list[str | Path], out: str | Path, options: BatchOptions,
              progress: Progress | None = None) -> tuple[BatchSummary, pa.Table]:
    """Score every item of `inputs` into the Parquet file `out` (resuming earlier parts); returns the summary."""
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".parquet" or not out.parent.is_dir():
        raise BatchError(f"--out {out}: give a .parquet file name in an existing folder")
    settings = batch_settings(options)
    found = collect(inputs)
    folder = parts_dir(out, settings)
    done = done_hashes(folder) if folder.is_dir() else set()
    unique = {i.sha256: i for i in reversed(found.items)}  # the first key of identical content is scored
    todo = sorted((i for sha, i in unique.items() if sha not in done), key=lambda i: i.key)
    failed = [i for i in todo if i.kind == "error"]
    if failed:
        write_part(folder, [error_record(i.key, i.kind, i.sha256, i.error or "") for i in failed], settings)
    todo = [i for i in todo if i.kind != "error"]
    overlays = Path(options.overlays_dir) if options.overlays_dir else None
    if overlays is not None:
        overlays.mkdir(parents=True, exist_ok=True)
    workers, address, started, count = options.workers or 1, options.address or "local", False, 0
    if todo:
        if progress:
            progress(0, len(todo))
        batches, workers, address, started = _execute(todo, options)
        try:
            for records in batches:
                write_part(folder, _save_overlays(records, overlays), settings)
                count += len(records)
                if progress:
                    progress(count, len(todo))
        finally:
            if started:
                import ray

                ray.shutdown()
    table = merge(folder, found.items, out, settings)
    reused = sum(1 for i in found.items if i.sha256 in done)
    summary = summarise(table, count + len(failed), reused, len(found.skipped), time.perf_counter() - start, workers,
                        address)
    atomic_write_text(out.with_suffix(".summary.json"), summary.to_json() + "\n")
    return summary, table
