"""The results of a classified series as DICOM objects for the PACS (issue 24): a Structured Report, the chosen
explanation overlays as Secondary Capture images and the case report as an Encapsulated PDF.

Each kind goes in its own new series of the *source* study (same Study Instance UID; the patient and study modules
are copied from the source images and nothing else about the patient is added), with new UIDs, Manufacturer
"BrainScan XAI" and the app's version as Software Versions. Building sends nothing: the PACS client sends
`ResultObjects.datasets` with STOW-RS after the user confirms `ResultObjects.describe()`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset

from core.errors import CaseError
from core.report.dicom_capture import MANUFACTURER, encapsulated_pdf, secondary_capture, type2_filled
from core.report.dicom_sr import RESEARCH_ONLY, SCHEME, SCHEME_NAME, SrReading, read_sr, sr_content, sr_text
from core.report.legend import overlay_with_legend
from core.report.model_info import ModelInfo

if TYPE_CHECKING:  # types only: the series and PDF modules pull in the inference stack and fpdf
    from core.model.series_assessment import SeriesResult
    from core.report.pdf import ReportScan

SR_SERIES, SC_SERIES, PDF_SERIES = 9901, 9902, 9903  # series numbers of the result series (high: after the scanner's)
SERIES_DESCRIPTIONS = {SR_SERIES: "BrainScan XAI result (research use only)",
                       SC_SERIES: "BrainScan XAI explanations (research use only)",
                       PDF_SERIES: "BrainScan XAI case report (research use only)"}


@dataclass(frozen=True)
class OverlayCapture:
    """One explanation overlay to send: its title, the picture (RGB uint8, legend burned in) and the index of the
    source slice it explains (into the `sources` given to `build_results`)."""

    title: str
    image: np.ndarray
    source: int


def overlay_captures(scan: ReportScan, source: int) -> list[OverlayCapture]:
    """A report section's overlays with their legends, drawn as the PDF and the PNG downloads draw them; `source` is
    the section's slice index (as `core.report.case.series_sections` pairs them)."""
    return [OverlayCapture(f"{o.method} of {o.label}, {scan.title}",
                           overlay_with_legend(o.overlay, o.kind, o.label, f"{o.method}: {o.label}"), source)
            for o in scan.overlays]


@dataclass(frozen=True)
class ResultObjects:
    """The DICOM objects built for one classified series (nothing is sent by building them)."""

    sr: Dataset
    captures: tuple[Dataset, ...] = ()
    pdf: Dataset | None = None

    @property
    def datasets(self) -> list[Dataset]:
        """Everything to send, in order: the SR, the captures, the PDF."""
        return [self.sr, *self.captures, *([] if self.pdf is None else [self.pdf])]

    def describe(self) -> list[str]:
        """One line per object, for the "send to PACS" confirmation (no patient data: kinds, series and sizes)."""
        lines = [f"Structured report (Comprehensive SR) in new series {SR_SERIES}: the model and its version, the "
                 f'"{RESEARCH_ONLY}" statement, the series verdict and {_groups(self.sr)} slice assessments '
                 "(state, probabilities and prediction set, or the refusal and its reason), each referencing its "
                 "source image"]
        lines += [f"Secondary Capture image in new series {SC_SERIES}: {c.DerivationDescription} "
                  f"({c.Columns}x{c.Rows} pixels)" for c in self.captures]
        if self.pdf is not None:
            lines.append(f"Encapsulated PDF in new series {PDF_SERIES}: the case report "
                         f"({self.pdf.EncapsulatedDocumentLength:,} bytes)")
        return lines


def _groups(sr: Dataset) -> int:
    return sum(1 for item in sr.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "125007")


def _check(sources: Sequence[Dataset], result: SeriesResult, overlays: Sequence[OverlayCapture]) -> list[Dataset]:
    """The sources as a list, after checking they are one study's images matching the result slice for slice."""
    sources = list(sources)
    if len(sources) != len(result.predictions):
        raise ValueError(f"{len(sources)} source images for {len(result.predictions)} assessed slices")
    if any(not 0 <= o.source < len(sources) for o in overlays):
        raise ValueError("an overlay names a source slice outside the series")
    for source in sources:
        missing = [k for k in ("StudyInstanceUID", "SOPClassUID", "SOPInstanceUID") if not getattr(source, k, "")]
        if missing:
            raise CaseError(f"a source image has no {', '.join(missing)}: results cannot reference it")
    if len({s.StudyInstanceUID for s in sources}) > 1:
        raise CaseError("the source images belong to more than one study; send results per study")
    return sources


def build_results(sources: Sequence[Dataset], result: SeriesResult, info: ModelInfo,
                  overlays: Sequence[OverlayCapture] = (), pdf: bytes | None = None,
                  software: str | None = None) -> ResultObjects:
    """The SR, one Secondary Capture per overlay and the Encapsulated PDF (when `pdf` is given) for a series.

    `sources` are the series' images (pydicom datasets, pixel data optional) in the order of `result.predictions`
    (the order `classify_series` was given); `software` defaults to the app's version."""
    sources = [type2_filled(s) for s in _check(sources, result, overlays)]
    if software is None:
        from core.store.audit import app_version  # the audit store's module: SQLAlchemy only when needed

        software = app_version()

    def equipment(number: int) -> dict[str, str]:  # UTF-8 whatever the source's character set: the texts need it
        return {"series_description": SERIES_DESCRIPTIONS[number], "software_versions": software,
                "manufacturer_model_name": MANUFACTURER, "specific_character_set": "ISO_IR 192"}

    sr = hd.sr.ComprehensiveSR(
        evidence=sources, content=sr_content(result, sources, info),
        series_instance_uid=hd.UID(), series_number=SR_SERIES, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, coding_schemes=[CodingSchemeIdentificationItem(
            SCHEME, name=SCHEME_NAME, responsible_organization=MANUFACTURER)], **equipment(SR_SERIES))
    capture_series = str(hd.UID())
    captures = tuple(secondary_capture(o.image, o.title, sources[o.source], (capture_series, SC_SERIES), number,
                                       equipment(SC_SERIES))
                     for number, o in enumerate(overlays, start=1))
    document = None if pdf is None else encapsulated_pdf(pdf, sources, (str(hd.UID()), PDF_SERIES),
                                                         equipment(PDF_SERIES))
    return ResultObjects(sr, captures, document)


__all__ = ["RESEARCH_ONLY", "OverlayCapture", "ResultObjects", "SrReading", "build_results", "overlay_captures",
           "read_sr", "sr_text"]
