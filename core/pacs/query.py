"""QIDO-RS: search studies (patient id, accession number, date range or study UID) and list a study's series.

Results are small typed records of what a clinician needs to pick a series: no patient name or birth date is
asked for or kept. A series' plane comes from the ImageOrientationPatient of one of its instances.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from core.errors import PacsError
from core.io.series import technical_header
from core.pacs.connection import PacsConnection, open_client
from core.pacs.failures import pacs_errors

STUDY_FIELDS = ("StudyInstanceUID", "StudyDate", "AccessionNumber", "StudyDescription", "ModalitiesInStudy",
                "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_FIELDS = ("SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
                 "NumberOfSeriesRelatedInstances")
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MAX_STUDIES = 100


def check_uid(value: str, what: str = "UID") -> str:
    """A DICOM UID (digits and dots, at most 64 characters), or a PacsError."""
    value = (value or "").strip()
    if not UID.match(value) or len(value) > 64:
        raise PacsError(f"{what} must be a DICOM UID (digits and dots, at most 64 characters)")
    return value


@dataclass(frozen=True)
class StudySummary:
    """One study as QIDO-RS lists it."""

    study_uid: str
    date: str | None
    accession: str | None
    description: str | None
    modalities: tuple[str, ...]
    series_count: int | None
    instance_count: int | None


@dataclass(frozen=True)
class SeriesSummary:
    """One series of a study: what the series table shows and what retrieval checks first."""

    study_uid: str
    series_uid: str
    modality: str | None
    description: str | None
    number: int | None
    instance_count: int | None
    plane: str | None


def _value(item: dict[str, Any], keyword: str) -> Any:
    """The first value of one attribute of a DICOM JSON object (None when absent or empty)."""
    from pydicom.datadict import tag_for_keyword

    element = item.get(f"{tag_for_keyword(keyword):08X}") or {}
    values = element.get("Value") or []
    return values[0] if values else None


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _dicom_date(value: date | str | None) -> str:
    """YYYYMMDD from a date, 'YYYYMMDD' or 'YYYY-MM-DD'; a PacsError for anything else."""
    if value in (None, ""):
        return ""
    text = value.strftime("%Y%m%d") if isinstance(value, date) else str(value).strip().replace("-", "")
    if not re.fullmatch(r"\d{8}", text):
        raise PacsError("a study date must be YYYYMMDD or YYYY-MM-DD")
    return text


def study_filters(patient_id: str | None = None, accession: str | None = None, date_from: date | str | None = None,
                  date_to: date | str | None = None, study_uid: str | None = None) -> dict[str, str]:
    """QIDO-RS filters for the given criteria; at least one is needed (a PACS is never listed whole)."""
    filters: dict[str, str] = {}
    if patient_id:
        filters["PatientID"] = patient_id.strip()
    if accession:
        filters["AccessionNumber"] = accession.strip()
    if study_uid:
        filters["StudyInstanceUID"] = check_uid(study_uid, "the study UID")
    if date_from or date_to:
        filters["StudyDate"] = f"{_dicom_date(date_from)}-{_dicom_date(date_to)}"
    if not filters:
        raise PacsError("search by patient id, accession number, study date range or study UID")
    return filters


def search_studies(connection: PacsConnection, limit: int = MAX_STUDIES, **criteria: Any) -> list[StudySummary]:
    """Studies matching the criteria of `study_filters`, at most `limit`, newest first."""
    filters = study_filters(**criteria)
    with pacs_errors(connection, "search studies"):
        found = open_client(connection).search_for_studies(search_filters=filters, fields=list(STUDY_FIELDS),
                                                          limit=limit)
        studies = [StudySummary(str(_value(s, "StudyInstanceUID")), _value(s, "StudyDate"),
                                _value(s, "AccessionNumber"), _value(s, "StudyDescription"),
                                tuple(str(m) for m in (s.get("00080061", {}).get("Value") or [])),
                                _int(_value(s, "NumberOfStudyRelatedSeries")),
                                _int(_value(s, "NumberOfStudyRelatedInstances"))) for s in found]
    return sorted(studies, key=lambda s: s.date or "", reverse=True)


def _plane(client: Any, study_uid: str, series_uid: str) -> str | None:
    """Axial, coronal or sagittal from one instance's ImageOrientationPatient (None when it has none)."""
    from pydicom import Dataset

    found = client.search_for_instances(study_uid, series_uid, fields=["ImageOrientationPatient"], limit=1)
    orientation = (found[0].get("00200037", {}).get("Value") if found else None) or []
    if len(orientation) != 6:
        return None
    probe = Dataset()
    probe.ImageOrientationPatient = [float(v) for v in orientation]
    return technical_header(probe).get("Plane")


def list_series(connection: PacsConnection, study_uid: str) -> list[SeriesSummary]:
    """The study's series with modality, description, plane and number of instances, by series number."""
    study_uid = check_uid(study_uid, "the study UID")
    with pacs_errors(connection, "list the study's series"):
        client = open_client(connection)
        found = client.search_for_series(study_uid, fields=list(SERIES_FIELDS))
        out = []
        for s in found:
            series_uid = str(_value(s, "SeriesInstanceUID"))
            out.append(SeriesSummary(study_uid, series_uid, _value(s, "Modality"), _value(s, "SeriesDescription"),
                                     _int(_value(s, "SeriesNumber")),
                                     _int(_value(s, "NumberOfSeriesRelatedInstances")),
                                     _plane(client, study_uid, series_uid)))
    return sorted(out, key=lambda s: (s.number is None, s.number or 0, s.series_uid))


def find_series(connection: PacsConnection, study_uid: str, series_uid: str | None = None) -> SeriesSummary:
    """One series of the study: the given one, else the study's only MR series (else a PacsError listing them)."""
    series = list_series(connection, study_uid)
    if series_uid:
        series_uid = check_uid(series_uid, "the series UID")
        match = [s for s in series if s.series_uid == series_uid]
        if not match:
            raise PacsError("the study holds no series with that UID")
        return match[0]
    mr = [s for s in series if (s.modality or "").upper() == "MR"]
    if len(mr) == 1:
        return mr[0]
    listing = "; ".join(f"{s.series_uid} ({s.modality}, {s.instance_count} instances)" for s in series)
    raise PacsError(f"the study has {len(mr)} MR series: choose one with --series ({listing or 'none'})")
