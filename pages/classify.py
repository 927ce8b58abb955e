"""Classify: upload one or more scans (or pick a sample), read the class and probabilities."""
from __future__ import annotations

import time

import streamlit as st

from core.errors import BrainScanError
from core.model.card import CLASS_DESCRIPTIONS, class_label
from core.model.inference import Prediction
from core.training.registry import sample_class
from ui import state
from ui.figures import probability_bars
from ui.presentation import (
    LOW_CONFIDENCE,
    content_hash,
    format_probability,
    is_low_confidence,
    predictions_display,
    predictions_frame,
)
from ui.services import active_model, classify_cached, display_image, notice, sample_files, scans, selected_scan, set_scans

st.title("Classify a brain MRI slice")
notice()
uploads = st.file_uploader("Upload MRI slices — JPEG, PNG or DICOM; one or several files",
                           type=["jpg", "jpeg", "png", "dcm", "dicom"], accept_multiple_files=True, key=state.UPLOADS)
signature = tuple((f.name, f.size) for f in uploads or [])
if signature and signature != st.session_state.get(state.UPLOAD_SIGNATURE):
    set_scans({f.name: f.getvalue() for f in uploads})
st.session_state[state.UPLOAD_SIGNATURE] = signature

samples = sample_files()
if samples:
    st.caption("No scan at hand? Try a sample from the public test set (one per class; its known class is "
               "on the button):")
    for column, (name, path) in zip(st.columns(len(samples)), samples.items()):
        known = sample_class(path)
        if column.button(f"Sample — {class_label(known)}" if known else name, key=state.SAMPLE_PREFIX + name,
                         help=f"{name} from the dataset's Testing split", width="stretch"):
            set_scans({name: path.read_bytes()})

loaded = active_model()
if loaded is None:
    st.stop()
entry, model, card = loaded
files = scans()
if not files:
    st.info("Upload a scan or choose a sample to see the model's prediction.")
    st.stop()

predictions: dict[str, Prediction] = {}
started = time.perf_counter()
for name, data in files.items():
    try:
        predictions[name] = classify_cached(entry.key, content_hash(data), model, card, data, name)
    except BrainScanError as exc:
        st.error(str(exc))
if not predictions:
    st.stop()
seconds = time.perf_counter() - started

if len(files) > 1:
    st.subheader(f"Results for {len(predictions)} scans")
    table = predictions_frame(predictions.values())
    st.dataframe(predictions_display(table), hide_index=True, width="stretch")
    st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), "brainscan_results.csv",
                       "text/csv", key=state.DOWNLOAD_CSV)
    if st.session_state.get(state.SCAN) not in predictions:
        st.session_state[state.SCAN] = next(iter(predictions))
    st.selectbox("Details for", list(predictions), key=state.SCAN)

name, data = selected_scan()
if name not in predictions:
    st.stop()
prediction = predictions[name]
left, right = st.columns([1, 1.3], gap="large")
left.image(display_image(content_hash(data), data, name), caption=name, width="stretch")
with right:
    st.caption("Predicted class")
    st.markdown(f"<span style='font-size:2.2rem;font-weight:600'>{class_label(prediction.predicted)}</span> "
                f"&nbsp; <span style='font-size:1.2rem'>{format_probability(prediction.confidence)} probability</span>",
                unsafe_allow_html=True)
    st.caption(CLASS_DESCRIPTIONS.get(prediction.predicted, ""))
    if is_low_confidence(prediction):
        st.warning(f"Low confidence: the top probability is below {LOW_CONFIDENCE:.0%}. "
                   "Treat this prediction as uncertain and rely on the full radiological reading.")
    st.plotly_chart(probability_bars(prediction.probabilities, prediction.predicted), key="probabilities")
    st.caption(f"Model: {entry.label} ({entry.source}) · input {card.image_size} px · "
               f"classified in {seconds:.2f} s")
    st.page_link("pages/explain.py", label="Why? See the explanations for this scan", icon=":material/visibility:")
