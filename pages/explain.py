"""Explain: Score-CAM, SHAP and LIME side by side for the chosen scan, a comparison slider, per-scan metrics."""
from __future__ import annotations

import streamlit as st

from core.errors import BrainScanError
from core.model.card import class_label
from core.model.limits import headline_limit
from core.xai.agreement import OUTSIDE_ABOVE, describe_agreement
from core.xai.explainers import EXPLAINERS
from core.xai.metrics import METRICS
from core.xai.overlays import draw_outline, overlay_for, overlay_kind
from ui import state
from ui.case import case_id
from ui.clinical import overlay_download, record_explanations
from ui.compare_slider import comparison_slider
from ui.figures import xai_curves
from ui.presentation import content_hash, fit_for_display, format_probability, legend_html, scan_metrics_frame
from ui.services import (
    active_model,
    agreement_cached,
    assess_cached,
    cached_explanation,
    display_image,
    expert_mask,
    explanation_turn,
    labels,
    model_input,
    notice,
    options_key,
    remember_scan_choice,
    scan_metrics_cached,
    scans,
    selected_scan,
)
from ui.trust_view import answer_banner

st.title("Explain the prediction")
notice()
loaded = active_model()
if loaded is None:
    st.stop()
entry, model, card = loaded
if selected_scan() is None:
    if st.session_state.get(state.CASE_FROM_URL):  # a reload or a shared link: the case id survived, its scans not
        st.info(f"Case {case_id()} has no scans in this browser session. Scans are kept only in the memory of the "
                "session they were uploaded in (never on disk), so after a reload or in a new tab they must be "
                "uploaded again on the Classify page.")
    else:
        st.info("No scan yet: upload one or choose a sample on the Classify page.")
    st.page_link("pages/classify.py", label="Go to Classify", icon=":material/radiology:")
    st.stop()
shown = labels()  # de-identified "Scan 1 (hash)" unless the sidebar's "Show file names" is on
if len(scans()) > 1:
    st.selectbox("Scan", list(scans()), key=state.SCAN, format_func=shown.get, on_change=remember_scan_choice)
name, data = selected_scan()
label = shown[name]
scan_id = content_hash(data)
try:
    image = model_input(scan_id, card.image_size, data, label, card.crop)
    prediction = assess_cached(entry.key, scan_id, entry, model, card, data, label)
except BrainScanError as exc:
    st.error(str(exc))
    st.stop()

kind, headline, subline = answer_banner(prediction)
if prediction.refused:  # the same refusal as on Classify: no class, no probabilities, no overlays
    st.error(f"**{label}: {headline}.** {subline}")
    st.caption("Explanations are only computed for scans the model answers: an overlay on a refused scan would "
               "look like evidence for a diagnosis the model must not give.")
    st.page_link("pages/classify.py", label="Back to Classify", icon=":material/radiology:")
    st.stop()
getattr(st, kind)(f"**{label}: {headline}** — {subline}")
limit = headline_limit(card)
if limit:
    st.caption(f"Known limit: {limit}")

classes = list(card.class_names)
target = st.selectbox("Explain the evidence for", classes, index=classes.index(prediction.predicted),
                      format_func=lambda c: f"{class_label(c)} ({format_probability(prediction.probabilities[c])})"
                      + (" — most probable" if c == prediction.predicted else ""), key=state.EXPLAIN_CLASS)
class_index = classes.index(target)
st.caption(f"Explaining **{label}** (case {case_id()}); the model's most probable class: "
           f"{class_label(prediction.predicted)}.")


toggles = st.columns(len(EXPLAINERS) + 1)
enabled = [m for column, (m, spec) in zip(toggles, EXPLAINERS.items())
           if column.toggle(spec.label, value=True, key=state.TOGGLE_PREFIX + m, help=spec.description)]
alpha = toggles[-1].slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key=state.OVERLAY_ALPHA)
if not enabled:
    st.info("Switch on at least one explanation method.")
    st.stop()
mask = expert_mask(scan_id, name, data, card.crop)
display = st.columns(2)
positive_only = display[0].toggle("SHAP: evidence for the class only", value=False, key=state.SHAP_POSITIVE,
                                  help="Hide SHAP's blue (evidence against the class); the map is always shown "
                                       "smoothed and clipped at its 99th percentile so that it is visible.")
outline = mask is not None and display[1].toggle(
    "Expert outline", value=True, key=state.EXPERT_OUTLINE,
    help="The outline of the expert tumour mask of this dataset scan (an evaluation aid, not clinical truth).")

explanations = {}
options = {m: options_key(EXPLAINERS[m].default_options) for m in enabled}
with st.status("Computing explanations…", expanded=False) as status, explanation_turn(
        entry.key, scan_id, class_index, options, on_wait=lambda ahead: status.update(
            label=f"Waiting for the explainer: {ahead} {'scan' if ahead == 1 else 'scans'} ahead of yours…")):
    for method in enabled:
        status.update(label=f"Computing {EXPLAINERS[method].label}…")
        try:
            explanations[method] = cached_explanation(entry.key, scan_id, method, class_index, options[method], model, card,
                                               image, str(entry.path))
        except BrainScanError as exc:
            st.error(f"{EXPLAINERS[method].label}: {exc}")
    total = sum(e.seconds for e in explanations.values())
    if explanations:
        status.update(label=f"Explanations ready ({total:.1f} s of computation)", state="complete")
    else:
        status.update(label="No explanation could be computed", state="error")
record_explanations(entry, card, data, explanations)

base = fit_for_display(display_image(scan_id, data, label, card.crop))
if not explanations:
    st.image(base, caption=label, width=min(512, base.shape[1]))
    st.warning("Every explanation method failed for this scan (the reasons are above). The prediction on the "
               "Classify page is unaffected; try another scan or model.")
    st.stop()
overlays = {m: overlay_for(e, base, alpha, positive_only) for m, e in explanations.items()}
if outline:
    overlays = {m: draw_outline(o, mask) for m, o in overlays.items()}
for column, (method, explanation) in zip(st.columns(len(overlays)), explanations.items()):
    spec = EXPLAINERS[method]
    with column:
        st.image(overlays[method], caption=f"{spec.label} · {explanation.seconds:.1f} s", width="stretch",
                 alt=f"{spec.label} overlay for {class_label(target)} on {label}")
        st.markdown(legend_html(overlay_kind(explanation), class_label(target)), unsafe_allow_html=True)
        overlay_download(method, spec.label, overlays[method], overlay_kind(explanation), class_label(target), label)
        with st.expander("How to read it"):
            st.caption(spec.description)
            if overlay_kind(explanation) == "regions":
                st.caption("Yellow lines mark the regions (superpixels) that were hidden and shown.")
            if explanation.note:
                st.caption(explanation.note)

if len(explanations) >= 1:
    agreed = agreement_cached(entry.key, scan_id, class_index, tuple(explanations),
                              {m: e.map for m, e in explanations.items()}, image)
    outside = [EXPLAINERS[m].label for m in agreed.mostly_outside]
    if outside:
        st.warning(f"Most of the evidence of {', '.join(outside)} lies outside the head (more than "
                   f"{OUTSIDE_ABOVE:.0%} of the map's mass): that map points at the background or the image "
                   "border, not at anatomy. Read it with caution.")
    if agreed.pairs:
        wording = describe_agreement(agreed, {m: spec.label for m, spec in EXPLAINERS.items()})
        {"agree": st.success, "disagree": st.warning, "neutral": st.info}[wording.level](wording.text)
        pairs = ", ".join(f"{EXPLAINERS[a].label}–{EXPLAINERS[b].label} {v['top_iou']:.2f}"
                          for (a, b), v in agreed.pairs.items())
        st.caption(f"Agreement = overlap (IoU) of the most relevant 10% of pixels, per pair: {pairs}.")
    if card.crop == "head":
        st.caption("The scan is shown as the model sees it: cropped to the head and padded to a square, the frame "
                   "its maps are computed in.")
    if outline:
        st.caption("Green line: the expert tumour outline of this dataset scan (figshare/BRISC masks; an "
                   "evaluation aid, not clinical ground truth).")

st.subheader("Scan ↔ overlay")
compare = st.selectbox("Overlay to compare with the scan", list(overlays), format_func=lambda m: EXPLAINERS[m].label,
                       key=state.COMPARE_METHOD)
st.caption("Drag across the image: the scan on the left of the line, the overlay on the right.")
comparison_slider(base, overlays[compare], "Scan", EXPLAINERS[compare].label)

st.subheader("How faithful are these maps for this scan?")
st.caption("Deletion removes the most relevant pixels first (a faithful map makes the probability drop fast: lower "
           "AUC is better); insertion adds them to a blurred scan (a fast rise is better: higher AUC). "
           "Faithfulness correlation: do pixels with higher relevance change the prediction more? ROAD removes "
           "pixels and fills them in from their neighbours, so the hole does not give the map away (most relevant "
           "first: lower is better; least relevant first: higher). 'saturated': the blurred or black scan already "
           "scores like the scan itself, so that curve cannot tell maps apart.")
if st.button("Measure faithfulness for this scan", key=state.MEASURE):
    st.session_state[state.MEASURE_FOR] = (entry.key, scan_id, class_index)
if st.session_state.get(state.MEASURE_FOR) == (entry.key, scan_id, class_index):
    results = {}
    with st.spinner("Measuring deletion, insertion, faithfulness and ROAD…"):
        for method, explanation in explanations.items():
            try:
                results[EXPLAINERS[method].label] = scan_metrics_cached(
                    entry.key, scan_id, method, class_index, options_key(explanation.options), model, image,
                    explanation.map)
            except BrainScanError as exc:
                st.error(f"Faithfulness of {EXPLAINERS[method].label}: {exc}")
    if results:
        st.dataframe(scan_metrics_frame(results, METRICS), width="stretch")
    left, right = st.columns(2)
    for column, metric in ((left, "deletion_auc"), (right, "insertion_auc")):
        curves = {label: r[metric].curve for label, r in results.items() if r.get(metric) and r[metric].curve}
        if curves:
            column.plotly_chart(xai_curves(curves, METRICS[metric].label, "fraction of pixels changed"),
                                key=f"curve_{metric}")
