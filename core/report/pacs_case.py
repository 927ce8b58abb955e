"""A PACS series as a case: retrieve it, classify it through the upload's series path, build and send the results.

`classify_pacs_series` retrieves one series within the limits (`core.pacs.transfer`), reads it with the same
`load_series` an upload uses and classifies it with `classify_series` (the same gate, including the DICOM Modality
rule that refuses a CT, the same calibration and prediction sets). `prepare_results` builds the DICOM result
objects (SR, Secondary Captures of the overlays, Encapsulated PDF; `core.report.dicom_results`) and the same PDF
the app offers; nothing is sent until `send_results` is called (an explicit action in the app and the CLI), which
stores them with STOW-RS and returns the audit record of what was sent (UIDs hashed, no patient data).
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import PacsError
from core.io.series import MAX_SLICES, Series, load_series
from core.model.card import ModelCard
from core.model.series_assessment import SeriesResult, classify_series
from core.model.trust import load_trust
from core.pacs.connection import PacsConnection, from_settings
from core.pacs.query import SeriesSummary, find_series
from core.pacs.transfer import retrieve_series, store
from core.report.case import case_report, series_sections
from core.report.dicom_results import ResultObjects, build_results, overlay_captures
from core.report.model_info import model_info
from core.report.pdf import CaseReport, build_pdf

PACS_METHODS = ("scorecam",)  # overlays sent by default: the fastest method with a measured faithfulness


@dataclass
class PacsCase:
    """A classified PACS series: what was asked, the source datasets in slice order, the series and its result."""

    summary: SeriesSummary
    sources: list[Any]
    series: Series
    result: SeriesResult
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class OutgoingResults:
    """The result objects ready to send, the PDF they hold and the report data it was built from."""

    objects: ResultObjects
    pdf: bytes
    report: CaseReport
    seconds: float = 0.0

    def describe(self) -> list[str]:
        """Exactly what "send" stores in the PACS, one line per object."""
        return self.objects.describe()


def configured() -> PacsConnection:
    """The PACS connection from the environment (`core.settings`), or a PacsError saying how to configure one."""
    from core.settings import settings

    connection = from_settings(settings())
    if connection is None:
        raise PacsError("no PACS is configured: set BRAINSCAN_PACS_URL (e.g. http://127.0.0.1:8042/dicom-web)")
    return connection


def uid_hash(uid: str) -> str:
    """A UID as the audit trail keeps it: SHA-256, first 16 hex digits."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


def _in_slice_order(series: Series, datasets: list[Any]) -> list[Any]:
    """The source datasets in the series' slice order, matched by InstanceNumber (which must be unique)."""
    by_number = {}
    for ds in datasets:
        number = ds.get("InstanceNumber")
        if number in (None, "") or int(number) in by_number:
            raise PacsError("the series' instances lack unique instance numbers; results could not reference "
                            "each slice's source image")
        by_number[int(number)] = ds
    return [by_number[s.instance] for s in series.slices]


def classify_pacs_series(connection: PacsConnection, model: Any, card: ModelCard, model_dir: str | Path,
                         study_uid: str, series_uid: str | None = None,
                         on_instance: Callable[[int, int], None] | None = None) -> PacsCase:
    """Find, retrieve and classify one series of the study (the study's only MR series when none is named)."""
    start = time.perf_counter()
    summary = find_series(connection, study_uid, series_uid)
    if summary.instance_count is not None and summary.instance_count > MAX_SLICES:
        raise PacsError(f"the series holds {summary.instance_count:,} instances; the series path accepts at most "
                        f"{MAX_SLICES:,} slices")
    retrieved = retrieve_series(connection, summary, on_instance)
    fetched = time.perf_counter()
    series = load_series(retrieved.files)
    sources = _in_slice_order(series, retrieved.datasets)
    trust = load_trust(model_dir, card.class_names)
    result = classify_series(model, card, [s.image for s in series.slices], trust, series.modality)
    seconds = {"search_and_retrieve": fetched - start, "classify": time.perf_counter() - fetched}
    return PacsCase(summary, sources, series, result, seconds)


def prepare_results(case: PacsCase, model: Any, card: ModelCard, model_dir: str | Path, case_id: str,
                    methods: list[str] | tuple[str, ...] = PACS_METHODS) -> OutgoingResults:
    """The SR, the overlays of the reported slices as Secondary Captures and the case report as Encapsulated PDF
    (the same PDF `make_case_report` builds for the series); nothing is sent."""
    start = time.perf_counter()
    info = model_info(model_dir, card)
    sections = series_sections(model, card, model_dir, case.series, case.result, list(methods))
    report = case_report(info, card, case_id, [scan for _, scan in sections], len(case.series.slices),
                         (case.result, [s.label for s in case.series.slices], case.series.ordered_by))
    pdf = build_pdf(report)
    overlays = [capture for index, scan in sections for capture in overlay_captures(scan, index)]
    objects = build_results(case.sources, case.result, info, overlays, pdf)
    return OutgoingResults(objects, pdf, report, time.perf_counter() - start)


def send_results(connection: PacsConnection, case: PacsCase, outgoing: OutgoingResults) -> dict[str, Any]:
    """Store the result objects in the source study (STOW-RS); returns the audit record of what was sent."""
    datasets = outgoing.objects.datasets
    outcome = store(connection, case.summary.study_uid, datasets)
    return {"sent_to": "pacs", "server": uid_hash(connection.describe), "study": uid_hash(outcome.study_uid),
            "source_series": uid_hash(case.summary.series_uid), "series_state": series_state(case.result),
            "objects": [{"kind": _kind(ds), "sop_instance": uid_hash(str(ds.SOPInstanceUID))} for ds in datasets]}


def series_state(result: SeriesResult) -> str:
    """'refused' when the gate refused every slice, else 'answered' (the SR holds each slice's state)."""
    return "refused" if len(result.refused) == len(result.predictions) else "answered"


def _kind(ds: Any) -> str:
    return {"SR": "structured report", "OT": "secondary capture", "DOC": "encapsulated pdf"}.get(
        str(ds.get("Modality", "")), str(ds.get("Modality", "")))
