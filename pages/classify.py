"""Classify: upload one or more scans (or pick a sample), read the class and probabilities."""
from __future__ import annotations

import time

import streamlit as st

from core.errors import BrainScanError
from core.io.images import FORMATS_TEXT
from core.model.assessment import Assessment
from core.model.card import CLASS_DESCRIPTIONS, class_label
from core.model.catalog import sample_class
from core.model.limits import headline_limit
from ui import state
from ui.case import (
    audit,
    case_id,
    clear_case_scans,
    current_series,
    model_identity,
    prediction_record,
    scan_sha256,
    series_predictions,
    take_uploads,
)
from ui.clinical import feedback_form, header_panel, report_section, series_view
from ui.figures import probability_bars
from ui.presentation import content_hash, predictions_display, predictions_frame, results_title
from ui.services import (
    active_model,
    assess_cached,
    choose_scan,
    display_image,
    labels,
    notice,
    remember_scan_choice,
    sample_files,
    scans,
    selected_scan,
    set_scans,
)
from ui.trust_view import show_answer

st.title("Classify a brain MRI slice")
notice()
uploader = state.uploads_key(st.session_state.get(state.UPLOAD_NONCE, 0))
# on_change, not a comparison with the last upload: the user adding or removing (×) files replaces the case's
# scans at once (never a stale result), while coming back from another page, where the uploader is re-created
# empty, keeps them.
st.file_uploader(f"Upload MRI slices — {FORMATS_TEXT} (one or several files, a DICOM series, a multi-frame DICOM "
                 "or a zip of a series)",
                 type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "dcm", "dicom", "zip"],
                 accept_multiple_files=True, key=uploader,
                 on_change=lambda: take_uploads({f.name: f.getvalue() for f in st.session_state.get(uploader) or []}))

samples = sample_files()
if samples:
    st.caption("No scan at hand? Try a sample from the public test set (one per class; its known class is "
               "on the button):")
    for column, (name, path) in zip(st.columns(len(samples)), samples.items()):
        known = sample_class(path)
        if column.button(f"Sample — {class_label(known)}" if known else name, key=state.SAMPLE_PREFIX + name,
                         help=f"{name} from the dataset's Testing split", width="stretch"):
            clear_case_scans()  # the sample replaces the uploads (and clears the uploader)
            set_scans({name: path.read_bytes()})
            st.rerun()

loaded = active_model()
if loaded is None:
    st.stop()
entry, model, card = loaded
files = scans()
failures: dict[str, str] = dict(st.session_state.get(state.FAILURES) or {})
for reason in failures.values():
    st.error(reason)
if not files:
    if not failures:
        st.info("Upload a scan or choose a sample to see the model's prediction.")
    st.stop()

shown = labels(failures)  # de-identified "Scan 1 (hash)" unless the sidebar's "Show file names" is on
info = model_identity(entry, card)
predictions: dict[str, Assessment] = {}
series_result = None
started = time.perf_counter()
if current_series() is not None:
    series_result, predictions = series_predictions(entry, model, card)
else:
    for name, data in files.items():
        try:
            predictions[name] = assess_cached(entry.key, content_hash(data), entry, model, card, data, shown[name])
        except BrainScanError as exc:
            failures[name] = str(exc)
            st.error(str(exc))
seconds = time.perf_counter() - started
for name, prediction in predictions.items():
    audit("classification", scan_sha256(files[name]), info.sha256, prediction_record(prediction), once=(entry.key,))
if not predictions:
    st.stop()

if series_result is not None:
    series_view(series_result)
elif len(files) > 1 or failures:
    st.subheader(f"Results for {results_title(len(predictions), len(failures))}")
    table = predictions_frame(predictions.values(), failures={shown.get(n, n): r for n, r in failures.items()})
    st.dataframe(predictions_display(table), hide_index=True, width="stretch")
    st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), "brainscan_results.csv",
                       "text/csv", key=state.DOWNLOAD_CSV)
    if st.session_state.get(state.SCAN) not in predictions:
        choose_scan(next(iter(predictions)))
    if len(predictions) > 1:
        st.selectbox("Details for", list(predictions), key=state.SCAN, format_func=shown.get,
                     on_change=remember_scan_choice)

name, data = selected_scan()
if name not in predictions:
    name = next(iter(predictions))
    data = files[name]
prediction = predictions[name]
label = shown[name]
st.subheader(f"Result for {label}")
left, right = st.columns([1, 1.3], gap="large")
try:
    left.image(display_image(content_hash(data), data, label), caption=f"{label} · case {case_id()}", width="stretch",
               alt=f"MRI scan {label}; assessment: {prediction.headline}")
except BrainScanError as exc:  # e.g. a DICOM without pixels: the gate refused it before decoding
    left.info(f"No picture to show: {exc}")
with left:
    header_panel(name)
with right:
    answered = show_answer(prediction, sample_class(samples[name]) if name in samples else None,
                           headline_limit(card))
    if answered:
        if prediction.answer:
            st.caption(CLASS_DESCRIPTIONS.get(prediction.answer, ""))
        st.plotly_chart(probability_bars(prediction.probabilities, prediction.predicted), key="probabilities")
    st.caption(f"Model: {entry.label} ({entry.source}) · input {card.image_size} px · "
               f"assessed in {seconds:.2f} s")
    if answered:
        st.page_link("pages/explain.py", label="Why? See the explanations for this scan",
                     icon=":material/visibility:")
        feedback_form(label, data, prediction, list(card.class_names), info.sha256)

report_section(entry, model, card, predictions, series_result, shown)
