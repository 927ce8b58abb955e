"""WADO-RS retrieval of one series into memory within limits, and STOW-RS storage of result objects.

A series is refused BEFORE any pixel is downloaded when its instance count (QIDO-RS) reaches the limit, or when
the size its headers declare (WADO-RS metadata: rows x columns x frames x bytes per sample) reaches the byte limit.
While streaming, the bytes received are counted too (a server may compress or lie), and a series that arrives
with fewer instances than announced (a server stopped mid-transfer) is an error, never a silently short series.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import PacsError
from core.pacs.connection import PacsConnection, open_client
from core.pacs.failures import pacs_errors
from core.pacs.query import SeriesSummary


@dataclass
class RetrievedSeries:
    """A series in memory: each instance as its dataset and its Part 10 bytes (name: the SOP Instance UID)."""

    summary: SeriesSummary
    datasets: list[Any]
    files: dict[str, bytes]

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


def _mib(n: float) -> str:
    return f"{n / 1024**2:,.0f} MiB"


def declared_bytes(metadata: list[dict[str, Any]]) -> int:
    """The pixel bytes the instances' headers declare (DICOM JSON metadata), 0 for what they do not say."""
    total = 0
    for item in metadata:
        values = {tag: ((item.get(tag) or {}).get("Value") or [0])[0] for tag in
                  ("00280010", "00280011", "00280100", "00280002", "00280008")}
        rows, columns, bits, samples, frames = (int(values[t] or 0) for t in values)
        total += rows * columns * max(bits, 8) // 8 * max(samples, 1) * max(frames, 1)
    return total


def check_count(connection: PacsConnection, summary: SeriesSummary) -> None:
    """Refuse a series whose instance count reaches the limit (or is not announced), before anything moves."""
    if summary.instance_count is None:
        raise PacsError("the PACS does not say how many instances the series holds; it is not retrieved")
    if summary.instance_count >= connection.max_instances:
        raise PacsError(f"the series holds {summary.instance_count:,} instances; series of "
                        f"{connection.max_instances:,} or more are not retrieved (BRAINSCAN_PACS_MAX_INSTANCES)")


def retrieve_series(connection: PacsConnection, summary: SeriesSummary,
                    on_instance: Callable[[int, int], None] | None = None) -> RetrievedSeries:
    """Download one series within the limits (see the module docstring); `on_instance(done, total)` reports
    progress after each instance."""
    check_count(connection, summary)
    total = summary.instance_count or 0
    with pacs_errors(connection, "retrieve the series"):
        client = open_client(connection)
        declared = declared_bytes(client.retrieve_series_metadata(summary.study_uid, summary.series_uid))
        if declared >= connection.max_bytes:
            raise PacsError(f"the series declares {_mib(declared)} of pixel data; series of "
                            f"{_mib(connection.max_bytes)} or more are not retrieved (BRAINSCAN_PACS_MAX_BYTES)")
        datasets, files, received = [], {}, 0
        for ds in client.iter_series(summary.study_uid, summary.series_uid):
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            received += buffer.tell()
            if received >= connection.max_bytes or len(datasets) >= connection.max_instances:
                raise PacsError(f"the series grew past the limits while downloading ({len(datasets) + 1} "
                                f"instances, {_mib(received)}); it was dropped")
            datasets.append(ds)
            files[str(ds.SOPInstanceUID)] = buffer.getvalue()
            if on_instance is not None:
                on_instance(len(datasets), total)
    if len(datasets) != total:
        raise PacsError(f"the PACS at {connection.describe} sent {len(datasets)} of the series' {total} instances "
                        "(the transfer was cut); nothing was classified")
    return RetrievedSeries(summary, datasets, files)


@dataclass(frozen=True)
class StoreOutcome:
    """What STOW-RS stored: the SOP Instance UIDs the server accepted."""

    stored: tuple[str, ...]
    study_uid: str


def store(connection: PacsConnection, study_uid: str, datasets: list[Any]) -> StoreOutcome:
    """Send the datasets with STOW-RS into the study; any instance the PACS refuses is a PacsError."""
    if not datasets:
        raise PacsError("nothing to send")
    with pacs_errors(connection, "store the results"):
        answer = open_client(connection).store_instances(datasets, study_instance_uid=study_uid)
        failed = list(answer.get("FailedSOPSequence", []) or [])
        stored = tuple(str(item.ReferencedSOPInstanceUID) for item in answer.get("ReferencedSOPSequence", []) or [])
    if failed:
        reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
        raise PacsError(f"the PACS at {connection.describe} refused {len(failed)} of {len(datasets)} result "
                        f"objects (failure reason {', '.join(reasons)})")
    missing = {str(ds.SOPInstanceUID) for ds in datasets} - set(stored)
    if missing:
        raise PacsError(f"the PACS at {connection.describe} did not confirm {len(missing)} of {len(datasets)} "
                        "result objects")
    return StoreOutcome(stored, study_uid)
