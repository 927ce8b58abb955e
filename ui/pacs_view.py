"""The PACS panel: the server from the settings, a study search, the series table, "classify this series" and
"send results to PACS" behind a confirmation that lists exactly what will be stored.

Every PACS failure is shown as one message and changes nothing already on screen (the studies found, a series
classified, results prepared), so the panel stays usable; credentials are never shown.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.errors import BrainScanError
from core.report.case import series_rows
from core.report.pacs_case import (
    PacsCase,
    classify_pacs_series,
    configured,
    prepare_results,
    send_results,
    series_state,
    uid_hash,
)
from ui.case import audit, case_id, model_identity
from ui.presentation import format_probability

STUDIES = "pacs_studies"          # [(StudySummary, [SeriesSummary])] of the last search
CASE = "pacs_case"                # the PacsCase classified last
OUTGOING = "pacs_outgoing"        # the OutgoingResults prepared for sending (awaiting confirmation)
SENT = "pacs_sent"                # the lines describing what was sent last
SEARCH_FORM = "pacs_search"
CLASSIFY_PREFIX = "pacs_classify_"
PREPARE = "pacs_prepare"
CONFIRM = "pacs_confirm_send"
CANCEL = "pacs_cancel_send"


def connection_or_help() -> Any:
    """The configured PACS connection, or None after saying how to configure one."""
    try:
        connection = configured()
    except BrainScanError as exc:
        st.info(f"{exc}. Credentials go in BRAINSCAN_PACS_USER / BRAINSCAN_PACS_PASSWORD or BRAINSCAN_PACS_TOKEN; "
                "see docs/pacs.md.")
        return None
    login = "signed in (credentials from the settings)" if connection.authenticated else "no credentials"
    tls = "" if connection.url.startswith("http:") else (" · TLS verified" if connection.verify_tls
                                                       else " · TLS NOT verified")
    st.caption(f"Server: **{connection.describe}** · {login}{tls} · series of {connection.max_instances:,} "
               f"instances or {connection.max_bytes / 1024**3:g} GiB or more are not retrieved")
    return connection


def search_form(connection: Any) -> None:
    """Patient id, accession number, date range or study UID; the studies found and their series are kept."""
    from core.pacs.query import list_series, search_studies

    with st.form(SEARCH_FORM):
        left, middle, right = st.columns(3)
        patient_id = left.text_input("Patient ID")
        accession = middle.text_input("Accession number")
        study_uid = right.text_input("Study Instance UID")
        start, end = st.columns(2)
        date_from = start.text_input("Study date from (YYYYMMDD)")
        date_to = end.text_input("Study date to (YYYYMMDD)")
        submitted = st.form_submit_button("Search", icon=":material/search:")
    if not submitted:
        return
    try:
        studies = search_studies(connection, patient_id=patient_id, accession=accession, date_from=date_from,
                                 date_to=date_to, study_uid=study_uid)
        st.session_state[STUDIES] = [(s, list_series(connection, s.study_uid)) for s in studies]
    except BrainScanError as exc:
        st.error(str(exc))


def _series_frame(series: list[Any]) -> pd.DataFrame:
    return pd.DataFrame([{"Series": s.number, "Modality": s.modality, "Description": s.description,
                          "Plane": s.plane, "Instances": s.instance_count} for s in series])


def study_results(connection: Any, entry: Any, model: Any, card: Any) -> None:
    """Each study found with its series table and a "Classify this series" button per series."""
    studies = st.session_state.get(STUDIES)
    if studies is None:
        return
    if not studies:
        st.info("No study matches.")
    for study, series in studies:
        st.markdown(f"**{study.date or 'no date'} · {study.accession or 'no accession'} · "
                    f"{study.description or 'no description'}** ({', '.join(study.modalities)})")
        st.dataframe(_series_frame(series), hide_index=True)
        for s in series:
            label = f"Classify series {s.number} ({s.modality}, {s.description or 'no description'})"
            if st.button(label, key=f"{CLASSIFY_PREFIX}{s.series_uid}", icon=":material/radiology:"):
                _classify(connection, entry, model, card, s)


def _classify(connection: Any, entry: Any, model: Any, card: Any, summary: Any) -> None:
    progress = st.progress(0.0, text="Retrieving the series…")
    try:
        case = classify_pacs_series(connection, model, card, entry.path, summary.study_uid, summary.series_uid,
                                    lambda done, total: progress.progress(done / max(total, 1),
                                                                          text=f"Retrieved {done} of {total}"))
    except BrainScanError as exc:
        progress.empty()
        st.error(str(exc))
        return
    progress.empty()
    st.session_state[CASE], st.session_state[OUTGOING], st.session_state[SENT] = case, None, None
    audit("classification", None, model_identity(entry, card).sha256,
          {"source": "pacs", "series": uid_hash(summary.series_uid), "series_state": series_state(case.result),
           "slices": [a.audit_record() for a in case.result.predictions]})


def case_view(case: PacsCase) -> None:
    """The classified series: its summary with the rule and every slice's tumour probability and headline."""
    st.subheader(f"Series {case.summary.number}: {len(case.series.slices)} slices")
    st.info(case.result.summary())
    rows = series_rows(case.result, [s.label for s in case.series.slices])
    st.dataframe(pd.DataFrame([{"Slice": label, "Tumour probability": "—" if p is None else format_probability(p),
                                "Assessment": headline} for label, p, headline in rows]), hide_index=True)
    st.caption(f"Retrieved in {case.seconds.get('search_and_retrieve', 0):.1f} s, classified in "
               f"{case.seconds.get('classify', 0):.1f} s; slices ordered by {case.series.ordered_by}.")


def send_panel(connection: Any, entry: Any, model: Any, card: Any, case: PacsCase) -> None:
    """Prepare the results, show exactly what will be stored, and send only on confirmation."""
    if st.session_state.get(SENT):
        st.success("Sent to the PACS:\n" + "\n".join(f"- {line}" for line in st.session_state[SENT]))
    outgoing = st.session_state.get(OUTGOING)
    if outgoing is None:
        if st.button("Send results to PACS…", key=PREPARE, icon=":material/upload:"):
            try:
                with st.spinner("Building the structured report, the overlays and the PDF…"):
                    st.session_state[OUTGOING] = prepare_results(case, model, card, entry.path, case_id())
            except BrainScanError as exc:
                st.error(str(exc))
                return
            st.rerun()
        return
    box = st.container(border=True)
    box.markdown(f"**Confirm: these {len(outgoing.objects.datasets)} objects will be stored in the source study "
                 f"on {connection.describe}**")
    box.markdown("\n".join(f"- {line}" for line in outgoing.describe()))
    send, cancel = box.columns(2)
    if cancel.button("Cancel", key=CANCEL):
        st.session_state[OUTGOING] = None
        st.rerun()
    if send.button("Send", key=CONFIRM, type="primary", icon=":material/send:"):
        try:
            record = send_results(connection, case, outgoing)
        except BrainScanError as exc:
            st.error(f"{exc}. Nothing is lost: the results are still prepared; send again when the PACS is back.")
            return
        audit("report", None, outgoing.report.model.sha256, record)
        st.session_state[SENT], st.session_state[OUTGOING] = outgoing.describe(), None
        st.rerun()
