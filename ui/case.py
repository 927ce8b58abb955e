"""The case of this session: its id (sidebar, URL), the audit trail, uploads turned into scans or a series.

A case is an id the user types or generates; nothing else about the patient is asked or kept. Every
classification, explanation, report and feedback is recorded once per session in the audit store
(hashes only, never file names).
"""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import streamlit as st

from core.errors import AuditError, BrainScanError, CaseError
from core.io.series import expand_archives, is_dicom, load_series, series_files
from core.model.assessment import Assessment
from core.model.card import ModelCard
from core.model.series_assessment import SeriesResult, classify_series
from core.report.model_info import ModelInfo, model_info
from core.store.audit import AuditStore
from core.store.cases import new_case_id, sha256_bytes, validate_case_id
from ui import state
from ui.presentation import content_hash, scan_labels
from ui.services import choose_scan, decoded_scan, set_scans, show_file_names, trust_for


def session_id() -> str:
    """A random id for this browser session (what the audit trail calls a session)."""
    return st.session_state.setdefault(state.SESSION_ID, uuid.uuid4().hex)


def case_id() -> str:
    """The current case id: from the URL on the first run, else a generated one."""
    if state.CASE_ID not in st.session_state:
        try:
            st.session_state[state.CASE_ID] = validate_case_id(st.query_params.get(state.QUERY_CASE, ""))
            st.session_state[state.CASE_FROM_URL] = True  # a reload or a shared link: its scans are not here
        except CaseError:
            st.session_state[state.CASE_ID] = new_case_id()
    return st.session_state[state.CASE_ID]


def clear_case_scans() -> None:
    """Forget this session's scans, series and failures, and clear the uploader."""
    set_scans({})
    st.session_state[state.SERIES] = None
    st.session_state[state.HEADERS] = {}
    st.session_state[state.FAILURES] = {}
    st.session_state[state.REPORT_PDF] = None
    st.session_state[state.UPLOAD_NONCE] = st.session_state.get(state.UPLOAD_NONCE, 0) + 1


def case_panel() -> None:
    """Sidebar: the case id field and a 'New case' button; the id is kept in the URL (?case=...)."""
    current = case_id()
    if st.session_state.get(state.CASE_INPUT) is None:
        st.session_state[state.CASE_INPUT] = current
    box = st.sidebar.container(border=True)
    if box.button("New case", key=state.NEW_CASE, icon=":material/add:", help="A fresh generated id; clears the scans"):
        current = st.session_state[state.CASE_ID] = new_case_id()
        clear_case_scans()
        st.session_state[state.CASE_INPUT] = current
    typed = box.text_input("Case id", key=state.CASE_INPUT,
                           help="An identifier for this study (letters, digits, . _ -). Never a name or date of "
                                "birth: nothing else about the patient is asked or stored.")
    try:
        st.session_state[state.CASE_ID] = validate_case_id(typed)
    except CaseError as exc:
        box.error(str(exc))
    st.query_params[state.QUERY_CASE] = st.session_state[state.CASE_ID]


@st.cache_resource(show_spinner=False)
def _store(url_key: str) -> AuditStore:
    return AuditStore(url_key or None)


def audit_store() -> AuditStore | None:
    """The audit store (None after showing why it cannot be opened)."""
    from core.store.audit import default_url

    try:
        return _store(default_url())
    except AuditError as exc:
        st.error(f"Audit trail unavailable: {exc}")
        return None


@st.cache_data(show_spinner=False, max_entries=16)
def _model_info(model_key: str, model_dir: str, _card: ModelCard) -> ModelInfo:
    return model_info(model_dir, _card)


def model_identity(entry: Any, card: ModelCard) -> ModelInfo:
    """Name, file hash and headline metrics of the chosen model (hashed once per model file)."""
    return _model_info(entry.key, str(entry.path), card)


def audit(event: str, scan_hash: str | None, model_hash: str | None, result: dict[str, Any],
          once: tuple[Any, ...] | None = None) -> None:
    """Record one event for the current case; with `once`, at most once per session for that key."""
    key = (event, case_id(), scan_hash, model_hash, *(once or ()))
    done = st.session_state.setdefault(state.AUDITED, set())
    if once is not None and key in done:
        return
    store = audit_store()
    if store is None:
        return
    try:
        store.record(event, case_id(), session_id(), result, scan_hash=scan_hash, model_hash=model_hash)
    except BrainScanError as exc:
        st.error(f"Not recorded in the audit trail: {exc}")
        return
    done.add(key)


def prediction_record(prediction: Assessment) -> dict[str, Any]:
    """What the audit keeps of a classification: the CLI's fields without the file name."""
    return prediction.audit_record()


def _deidentified(text: str, labels: dict[str, str]) -> str:
    """`text` with every file name in `labels` replaced by its label (longest names first)."""
    for name in sorted(labels, key=len, reverse=True):
        text = text.replace(name, labels[name])
    return text


def _single_headers(files: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """The technical headers of the DICOM files among single scans, from the one decode that the assessment and
    the pictures use too (`decoded_scan`, under the label the pages show)."""
    shown = scan_labels(files, show_file_names())
    headers = {}
    for name, data in files.items():
        if is_dicom(data):
            try:
                headers[name] = dict(decoded_scan(content_hash(data), data, shown[name]).header)
            except BrainScanError:
                pass  # the classification shows why the file cannot be read
    return headers


def take_uploads(files: dict[str, bytes]) -> None:
    """Replace the case's scans with an upload: a DICOM series (`core.io.series.series_files`: several DICOMs, a
    multi-frame file, a zip of them) becomes its ordered slices; every other file is a scan of its own. A series
    that cannot be read does not reject the rest of the upload. Unusable files are kept with their reason."""
    failures: dict[str, str] = {}
    series = None
    headers: dict[str, dict[str, str]] = {}
    uploaded = dict(files)
    try:
        files = expand_archives(files)
    except CaseError as exc:
        failures["upload"] = str(exc)
        files = {}
    expanded = files
    in_series = series_files(files)
    singles = {n: d for n, d in files.items() if n not in in_series}
    if in_series:
        try:
            series = load_series(in_series)
        except BrainScanError as exc:
            failures["DICOM series"] = f"The DICOM series ({len(in_series)} files) cannot be read: {exc}"
    if series is not None:
        for name in singles:
            failures[name] = (f"{name} was uploaded with a DICOM series and is not part of it: upload it on its own "
                              "to classify it.")
        files = {s.label: s.png for s in series.slices}
        headers = {s.label: series.header for s in series.slices}
    else:
        files = singles
    set_scans(files)
    if series is None:
        headers = _single_headers(files)
    if series is not None:
        choose_scan(None)  # the series view then shows its most suspicious slice first
    if not show_file_names():  # a reason quotes the file's name: name it as the rest of the page does
        shown = {**scan_labels(expanded), **scan_labels(uploaded)}
        failures = {key: _deidentified(reason, shown) for key, reason in failures.items()}
    st.session_state[state.SERIES] = series
    st.session_state[state.HEADERS] = headers
    st.session_state[state.FAILURES] = failures
    st.session_state[state.REPORT_PDF] = None


def current_series() -> Any:
    """The session's DICOM series, or None."""
    return st.session_state.get(state.SERIES)


@st.cache_data(max_entries=16, show_spinner="Classifying the series…")
def _series_result(model_key: str, hashes: tuple[str, ...], _entry: Any, _model: Any, _card: ModelCard,
                   _images: list[Any], modality: str | None) -> SeriesResult:
    trust = trust_for(str(_entry.path), _entry.key, tuple(_card.class_names))
    return classify_series(_model, _card, _images, trust, modality)


def series_predictions(entry: Any, model: Any, card: ModelCard) -> tuple[SeriesResult, dict[str, Assessment]]:
    """The series classified in batches through the gate, calibration and sets (cached by model and slices),
    and one Assessment per slice label."""
    series = current_series()
    result = _series_result(entry.key, tuple(s.sha256 for s in series.slices), entry, model, card,
                            [s.image for s in series.slices], series.modality)
    predictions = {}
    for s, prediction in zip(series.slices, result.predictions):
        predictions[s.label] = dataclasses.replace(prediction, file=s.label)
    return result, predictions


def scan_sha256(data: bytes) -> str:
    """The audit trail's id of a scan: SHA-256 of the bytes classified."""
    return sha256_bytes(data)
