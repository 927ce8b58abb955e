"""Model metrics: how far to trust the model — known limits, classification results, scans from other collections,
training, XAI evaluation. Laid out to read without horizontal scrolling in a 1366×768 window (static tables that
wrap, confusion matrices two to a row)."""
from __future__ import annotations

import streamlit as st

from core.model.catalog import key_numbers
from core.training.registry import history_for
from core.xai.evaluation import load_results
from core.xai.localisation import load_localisation
from core.xai.metrics import SANITY_DESCRIPTION, SANITY_LABEL
from ui import state
from ui.case import model_identity
from ui.clinical import clinician_agreement
from ui.figures import confusion_heatmap, roc_curves, training_curves
from ui.metrics_view import show_external_validation, show_known_limits, unbroken
from ui.presentation import (
    LOCALISATION_SUBSETS,
    SPLIT_LABELS,
    TEST_SPLITS,
    audit_text,
    comparison_frame,
    headline_frame,
    key_numbers_text,
    localisation_frame,
    localisation_timing,
    per_class_frame,
    xai_frame,
)
from ui.reference import SPEC_RESULTS, SPEC_XAI, TARGETS
from ui.services import available_models, notice, saved_evaluation, selected_entry
from ui.trust_view import show_trust_metrics

st.title("Model metrics")
notice()
entries = available_models()
current = selected_entry()
if current is None:
    st.error("No model is available: see the Classify page for where models are looked for.")
    st.stop()
labels = {str(e.path): f"{e.label} ({e.source})" for e in entries}
entry = current  # one model choice for the whole app: the sidebar's (kept in the URL)
st.markdown(f"**Model: {labels[str(entry.path)]}** — change it with *Active model* in the sidebar.")
card = entry.card
if card is None:
    st.error(f"The model card of {entry.path} cannot be read.")
    st.stop()
st.caption(key_numbers_text(key_numbers(card)))
show_known_limits(card)
evaluation = card.evaluation_record

st.header("Classification")
if "test" not in evaluation.splits:
    st.info("This model's card holds no evaluation yet (it is evaluated at the end of a completed training run, "
            "or with `python -m core evaluate`).")
else:
    st.markdown("Headline metrics with 95% bootstrap intervals; 1 is perfect except for the penalty, where 0 is. "
                "*Test, all* is the whole public test split; *strict unseen* keeps only test scans whose source "
                "slice (figshare/BRISC id, mirrored, re-framed or re-encoded copy) never occurs in Training: the honest "
                "in-distribution figure. *Older leakage-free* is a weaker subset (no exact or unmirrored near copy). "
                f"The specification's numbers are shown for reference: {SPEC_RESULTS['source']}.")
    st.table(unbroken(headline_frame(evaluation)), border="horizontal")
    st.caption(f"Targets: test accuracy ≥ {TARGETS['test_accuracy']:.0%}, leakage-free macro-F1 ≥ "
               f"{TARGETS['leakage_free_macro_f1']:.0%}, macro AUC ≥ {TARGETS['macro_auc']}.")

    st.subheader("Confusion matrices")
    splits = [s for s in ("validation", *TEST_SPLITS) if s in evaluation.splits]
    matrices = [s for s in splits if evaluation.splits[s].confusion_matrix]
    if not matrices:
        st.info("This model card holds no confusion matrix (re-run `python -m core evaluate --save` to add one).")
    else:
        normalised = st.segmented_control("Show", ["Counts", "Normalised by true class"], default="Counts",
                                          key=state.CONFUSION_MODE) == "Normalised by true class"
        for start in range(0, len(matrices), 2):  # two to a row: readable at 1366 px with the sidebar open
            for column, split in zip(st.columns(2), matrices[start:start + 2]):
                figure = confusion_heatmap(evaluation.splits[split].confusion_matrix, card.class_names, normalised,
                                           f"{SPLIT_LABELS[split]} (n={evaluation.splits[split].n})")
                figure.update_layout(height=360)
                column.plotly_chart(figure, key=f"confusion_{split}", width="stretch")

    st.subheader("Per class")
    per_class = [s for s in splits if evaluation.splits[s].per_class]
    if not per_class:
        st.info("This model card holds no per-class results.")
    else:
        split = st.segmented_control("Split", per_class, default="test" if "test" in per_class else per_class[0],
                                     format_func=SPLIT_LABELS.get, key=state.PER_CLASS_SPLIT) or per_class[0]
        st.table(per_class_frame(evaluation.splits[split]), border="horizontal")
        if evaluation.splits[split].roc:
            st.plotly_chart(roc_curves(evaluation.splits[split].roc), key="roc", width="stretch")
    audit = evaluation.audit_summary
    if audit is not None:
        st.caption(audit_text(audit))

st.header("Scans from other collections (external validation)")
show_external_validation(card)

st.header("Knowing when not to answer")
show_trust_metrics(evaluation)

st.header("Training")
history = history_for(entry.path)
if history:
    st.plotly_chart(training_curves(history), key="training_curves", width="stretch")
    training = card.training_record
    if card.training:
        best = float("nan") if training.best_val_accuracy is None else training.best_val_accuracy
        st.caption(f"{training.epochs_run or len(history)} epochs, best validation accuracy {best:.4f} at epoch "
                   f"{'–' if training.best_epoch is None else training.best_epoch}, "
                   f"{(training.wall_seconds or 0) / 60:.0f} min on {training.cpus or '?'} CPUs.")
        if training.reproduce_command:
            st.caption("Retrain with the same recipe (every option explicit):")
            st.code(training.reproduce_command, language="bash", wrap_lines=True)
else:
    st.info("No training history was saved with this model.")

st.header("Explanations (XAI evaluation)")
results = saved_evaluation(load_results, entry.path, "XAI evaluation")
if results is None:
    st.info("No XAI evaluation for this model yet (the XAI evaluation writes xai_eval.json into the model folder).")
elif results:
    st.markdown(f"Mean over {results.n_images or '?'} test scans, 95% intervals. Baselines "
                f"({', '.join(results.baselines) or 'none'}) show what a map with no knowledge of the model scores. "
                "↓: lower is better, ↑: higher is better. "
                f"Specification numbers: {SPEC_XAI['source']}.")
    st.table(xai_frame(results), border="horizontal")
    st.caption(f"**{SANITY_LABEL}** — {SANITY_DESCRIPTION} "
               "Near 0: the map depends on what the model learned; near 1: it would look the same for any model.")

st.subheader("Do the maps point at the tumour?")
localisation = saved_evaluation(load_localisation, entry.path, "localisation evaluation")
if localisation is None:
    st.info("No localisation evaluation for this model yet (`python -m core xai-eval --localisation --n 300` writes "
            "xai_localisation.json into the model folder).")
elif localisation:
    subset = st.radio("Scans", list(LOCALISATION_SUBSETS), format_func=LOCALISATION_SUBSETS.get, horizontal=True,
                      key=state.LOCALISATION_SUBSET)
    shown = localisation.summary[subset].n if subset in localisation.summary else 0
    st.markdown(f"{shown} test tumour scans with expert masks; every method explains "
                "the true class. Beside the methods, the floors: a random map, a centred Gaussian and a uniform map "
                "(whose share of the map inside the tumour is the mask's area fraction). ↑: higher is better, "
                "↓: lower is better. Mean [95% interval].")
    st.table(localisation_frame(localisation, subset), border="horizontal", hide_index=True)
    st.caption(f"Unseen: {localisation.unseen_definition}. Command: `{localisation.command}` "
               f"({localisation_timing(localisation)}).")

st.header("Agreement with clinicians")
st.markdown("Clinician feedback recorded under classified scans (the latest verdict per scan and case), for this "
            "model's file version: agreement per predicted class, and the disagreements to review (and, later, "
            "to retrain on).")
clinician_agreement(card, model_hash=model_identity(entry, card).sha256)

st.header("Compare two models")
if len(entries) < 2:
    st.caption("Only one model is available; finished training runs appear here too.")
else:
    pair = st.multiselect("Models", list(labels), default=list(labels)[:2], max_selections=2,
                          format_func=labels.get, key=state.COMPARE_MODELS)
    cards = {labels[p]: e.card for p in pair for e in entries if str(e.path) == p and e.card is not None}
    if len(cards) == 2:
        st.table(comparison_frame(cards), border="horizontal")
