"""The clinical workflow's page sections: the series view, the DICOM header panel, clinician feedback,
the case report, the audit list and the agreement with clinicians. Pages call these in a line or two."""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.errors import BrainScanError
from core.model.assessment import Assessment
from core.model.card import ModelCard, class_label
from core.model.series_assessment import SeriesResult
from core.report import REPORT_MAX_SCANS, TOP_SLICES
from core.store.audit import EVENTS, app_version, records_csv
from core.store.feedback import agreement_by_class, disagreements, record_feedback
from core.xai.explainers import EXPLAINERS
from core.xai.metrics import METRICS
from ui import state
from ui.case import (
    audit,
    audit_store,
    case_id,
    current_series,
    model_identity,
    scan_sha256,
    session_id,
)
from ui.presentation import content_hash, format_probability
from ui.services import (
    cached_explanation,
    choose_scan,
    display_image,
    explanation_turn,
    model_input,
    options_key,
    remember_scan_choice,
    scan_metrics_cached,
    scans,
)


def header_panel(name: str) -> None:
    """The technical DICOM header of the scan shown (never names, ids or dates)."""
    header = (st.session_state.get(state.HEADERS) or {}).get(name)
    if header:
        with st.expander("DICOM technical header"):
            st.table(pd.DataFrame({"Field": list(header), "Value": list(header.values())}).set_index("Field"))


def series_profile(result: SeriesResult, labels: list[str], selected: int) -> go.Figure:
    """Per-slice class probabilities along the series, the selected slice marked."""
    fig = go.Figure()
    x = list(range(1, len(labels) + 1))
    for j, name in enumerate(result.class_names):
        fig.add_trace(go.Scatter(x=x, y=result.probabilities[:, j], mode="lines+markers", name=class_label(name),
                                 hovertext=labels))
    fig.add_trace(go.Scatter(x=x, y=result.suspicion, mode="lines", name="tumour probability (series rule)",
                             line={"dash": "dot", "width": 3}))
    fig.add_vline(x=selected + 1, line_dash="dash", opacity=0.6)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="slice", xaxis_dtick=1,
                      yaxis_title="probability", yaxis_range=[0, 1], legend={"orientation": "h", "y": -0.3},
                      title="Probabilities along the series")
    return fig


def series_view(result: SeriesResult) -> None:
    """Series summary with its rule, the per-slice plot, the slice slider, the most suspicious slices first."""
    series = current_series()
    labels = [s.label for s in series.slices]
    st.subheader(f"DICOM series: {len(labels)} slices")
    st.info(result.summary())
    st.caption(f"Slices ordered by {series.ordered_by}; classified in one batch.")
    if st.session_state.get(state.SCAN) not in labels:
        choose_scan(labels[result.top])
    st.plotly_chart(series_profile(result, labels, labels.index(st.session_state[state.SCAN])), key="series_profile")
    st.markdown("**Most suspicious slices first**")
    for rank, i in enumerate(result.ranking[:5], start=1):
        left, middle, right = st.columns([3, 3, 2], vertical_alignment="center")
        left.markdown(f"{rank}. **{labels[i]}**")
        if result.predictions and result.predictions[i].refused:
            middle.markdown("not classified (refused by the input gate)")
        else:
            middle.markdown(f"tumour probability {format_probability(result.suspicion[i])} · "
                            f"{result.predictions[i].headline}")
        if right.button("Explain this slice", key=f"{state.EXPLAIN_SLICE_PREFIX}{i}", icon=":material/visibility:"):
            choose_scan(labels[i])
            st.switch_page("pages/explain.py")
    st.select_slider("Slice shown", options=labels, key=state.SCAN, on_change=remember_scan_choice)


def feedback_form(name: str, data: bytes, prediction: Assessment, classes: list[str], model_hash: str) -> None:
    """Agree / disagree with the answer shown, the correct class and a note; stored in the audit trail. Nothing
    is pre-selected (a default would record an agreement nobody gave); refused scans get no form."""
    if prediction.refused:
        return
    scan_hash = scan_sha256(data)
    with st.form(f"{state.FEEDBACK_PREFIX}{scan_hash[:16]}", clear_on_submit=False, border=True):
        st.markdown(f"**Your reading of {name}** (stored with the audit record of this case)")
        verdict = st.radio(f"The model's answer ({prediction.headline}) is", ["Correct", "Wrong"], index=None,
                           horizontal=True, key=f"{state.FEEDBACK_PREFIX}verdict_{scan_hash[:16]}")
        correct = st.selectbox("Correct class (when wrong)", classes, index=None, format_func=class_label,
                               placeholder="Choose the class you read", key=f"{state.FEEDBACK_PREFIX}class_{scan_hash[:16]}")
        note = st.text_area("Note (optional; no patient details)", max_chars=2000,
                            key=f"{state.FEEDBACK_PREFIX}note_{scan_hash[:16]}")
        if st.form_submit_button("Record feedback", icon=":material/rate_review:"):
            problem = feedback_problem(verdict, correct)
            if problem:
                st.error(problem)
                return
            store = audit_store()
            if store is not None:
                try:
                    record_feedback(store, case_id(), session_id(), scan_hash, model_hash, prediction.predicted,
                                    verdict == "Correct", correct if verdict == "Wrong" else prediction.predicted,
                                    note)
                    st.success(f"Feedback recorded for {name} in case {case_id()}.")
                except BrainScanError as exc:
                    st.error(str(exc))


def feedback_problem(verdict: str | None, correct: str | None) -> str | None:
    """Why a feedback form cannot be recorded yet, or None."""
    if verdict is None:
        return "Choose whether the model's answer is correct or wrong."
    if verdict == "Wrong" and correct is None:
        return "Choose the correct class."
    return None


def report_section(entry: Any, model: Any, card: ModelCard, predictions: dict[str, Assessment],
                   series_result: SeriesResult | None = None, shown: dict[str, str] | None = None) -> None:
    """Build the case report (PDF) from the assessments on screen, with the chosen overlays, through the one
    report builder of `core.report.case`; then download it. `shown` maps file names to the labels the report
    uses (the de-identified ones by default). Refused scans are reported with their refusal, never explained."""
    st.subheader("Case report (PDF)")
    methods = st.multiselect("Overlays in the report", list(EXPLAINERS), default=list(EXPLAINERS),
                             format_func=lambda m: EXPLAINERS[m].label, key=state.REPORT_METHODS)
    measure = st.checkbox("Measure per-scan faithfulness (slower)", key=state.REPORT_FAITHFULNESS)
    files = scans()
    if series_result is not None:
        labels = [s.label for s in current_series().slices]
        targets = [labels[i] for i in series_result.ranking[:TOP_SLICES]
                   if not series_result.predictions[i].refused]
    else:
        targets = [n for n in files if n in predictions][:REPORT_MAX_SCANS]
    total = len(current_series().slices) if series_result is not None else len(predictions)
    st.caption(f"The report holds {len(targets)} scan section(s)"
               + (" (the most suspicious slices; every slice's assessment is listed)" if series_result else
                  f" of the case's {total} scans (at most {REPORT_MAX_SCANS} per report)" if len(targets) < total
                  else "")
               + f", case {case_id()}, the model's version, headline metrics and known limits.")
    key = (case_id(), entry.key, tuple(scan_sha256(files[n]) for n in targets), tuple(methods), measure)
    if st.button("Build the case report", key=state.REPORT_BUILD, icon=":material/picture_as_pdf:"):
        from core.report.case import case_report, report_scan  # fpdf2 takes ~1 s to import: only when built
        from core.report.pdf import build_pdf

        info = model_identity(entry, card)
        sections = []
        with st.spinner("Explaining and drawing the report…"):
            for name in targets:
                data = files[name]
                assessment = predictions[name]
                explanations, faithfulness = _report_explanations(entry, model, card, name, data, assessment,
                                                                  methods, measure)
                sections.append(report_scan(
                    (shown or {}).get(name, name), scan_sha256(data), _report_picture(data, name, card.crop), assessment,
                    explanations, faithfulness=faithfulness,
                    header=(st.session_state.get(state.HEADERS) or {}).get(name)))
            series = None
            if series_result is not None:
                slices = current_series()
                series = (series_result, [s.label for s in slices.slices], slices.ordered_by)
            report = case_report(info, card, case_id(), sections, total, series)
            pdf = build_pdf(report)
        st.session_state[state.REPORT_PDF] = (key, pdf)
        audit("report", None, info.sha256, {"scans": [{"sha256": s.sha256, **s.assessment.audit_record()}
                                                      for s in report.scans], "methods": methods,
                                            "series_summary": report.series_summary})
    built = st.session_state.get(state.REPORT_PDF)
    if built and built[0] == key:
        st.download_button("Download the case report (PDF)", built[1], f"brainscan_{case_id()}.pdf",
                           "application/pdf", key=state.DOWNLOAD_REPORT, icon=":material/download:")


def _report_picture(data: bytes, name: str, crop: str) -> Any:
    """The scan's picture for the report, framed as the model sees it (its overlays line up), or None when its
    pixels were never decoded."""
    try:
        return display_image(content_hash(data), data, name, crop)
    except BrainScanError:
        return None


def _report_explanations(entry: Any, model: Any, card: ModelCard, name: str, data: bytes, assessment: Assessment,
                         methods: list[str], measure: bool) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The cached explanations (and faithfulness) of the most probable class; none for a refused scan."""
    explanations: dict[str, Any] = {}
    faithfulness: dict[str, dict[str, float]] = {}
    if assessment.refused:
        return explanations, faithfulness
    image = model_input(content_hash(data), card.image_size, data, name, card.crop)
    class_index = list(card.class_names).index(assessment.predicted)
    options = {m: options_key(EXPLAINERS[m].default_options) for m in methods}
    with explanation_turn(entry.key, content_hash(data), class_index, options):
        explanations = {m: cached_explanation(entry.key, content_hash(data), m, class_index, options[m], model, card, image,
                                       str(entry.path)) for m in methods}
    for method in methods:
        if measure:
            results = scan_metrics_cached(entry.key, content_hash(data), method, class_index,
                                          options_key(explanations[method].options), model, image,
                                          explanations[method].map)
            faithfulness[method] = {METRICS[m].label: float(r.value) for m, r in results.items()}
    return explanations, faithfulness


def audit_view() -> None:
    """The audit records, filterable by case, event and scan hash, exportable as CSV."""
    store = audit_store()
    if store is None:
        return
    st.caption(f"Store: {store.safe_url} · append-only · app version {app_version()}")
    left, middle, right = st.columns([2, 3, 2])
    case = left.text_input("Case id contains", value=case_id(), key=state.AUDIT_CASE)
    events = middle.multiselect("Events", list(EVENTS), default=list(EVENTS), key=state.AUDIT_EVENTS)
    scan = right.text_input("Scan hash starts with", key=state.AUDIT_SCAN)
    records = [r for r in store.records(case_id=case.strip() or None, scan_hash=scan.strip() or None, limit=5000)
               if r.event in events]
    st.markdown(f"**{len(records)} record{'s' if len(records) != 1 else ''}**")
    if records:
        frame = pd.DataFrame([r.to_row() for r in records])
        frame["recorded_at"] = [r.recorded_at.strftime("%Y-%m-%d %H:%M:%S UTC") for r in records]
        st.dataframe(frame, hide_index=True, width="stretch")
        st.download_button("Download these records (CSV)", records_csv(records).encode(), "brainscan_audit.csv",
                           "text/csv", key=state.DOWNLOAD_AUDIT)


def clinician_agreement(card: ModelCard, model_hash: str | None = None) -> None:
    """Agreement with clinicians per predicted class, and the disagreements (to review, later to retrain on)."""
    store = audit_store()
    if store is None:
        return
    records = [r for r in store.records(event_name="feedback") if model_hash is None or r.model_hash == model_hash]
    if not records:
        st.info("No clinician feedback for this model yet (record it under a classified scan).")
        return
    rows = agreement_by_class(records, list(card.class_names))
    st.dataframe(pd.DataFrame([{"predicted class": class_label(r["class"]), "reviewed": r["reviewed"],
                                "agreed": r["agreed"],
                                "agreement": "–" if r["agreement"] is None else f"{r['agreement']:.0%}"}
                               for r in rows]), hide_index=True, width="stretch")
    table = pd.DataFrame(disagreements(records))
    st.markdown(f"**Disagreements: {len(table)}**")
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button("Download the disagreements (CSV)", table.to_csv(index=False).encode(),
                           "brainscan_disagreements.csv", "text/csv", key=state.DOWNLOAD_DISAGREEMENTS)


def overlay_download(method: str, label: str, overlay: Any, kind: str, class_name: str, scan: str) -> None:
    """A PNG of the overlay with its colour legend underneath."""
    from core.report.legend import overlay_with_legend, png_bytes

    picture = overlay_with_legend(overlay, kind, class_name, f"{label} - {class_name}")
    st.download_button(f"{label} overlay (PNG)", png_bytes(picture), f"brainscan_{case_id()}_{method}.png",
                       "image/png", key=f"{state.DOWNLOAD_OVERLAY_PREFIX}{method}", icon=":material/download:",
                       help=f"The {label} overlay of {scan} with its legend")


def record_explanations(entry: Any, card: ModelCard, data: bytes, explanations: dict[str, Any]) -> None:
    """One audit record per explanation shown (once per session, scan, model, method and class)."""
    info = model_identity(entry, card)
    for method, explanation in explanations.items():
        audit("explanation", scan_sha256(data), info.sha256,
              {"method": method, "explained_class": card.class_names[explanation.class_index],
               "seconds": round(float(explanation.seconds), 3), "options": explanation.options},
              once=(entry.key, method, explanation.class_index))
