"""The metrics page's external validation and known limits: what the model gets wrong on scans from elsewhere.

`external_frame` is pure (unit-tested); `show_known_limits` and `show_external_validation` render with Streamlit.
Every figure comes from the model card (`evaluation.external`, written by `python -m core evaluate-external DIR
--save`, and the input gate's refusals in `evaluation.trust.external`)."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.model.card_records import EvaluationRecord, Proportion
from core.model.limits import FAR_OOD, known_limits, saw_tumour_collection

# Short names of the known external sets for a table; other folders are shown by their folder name.
SET_LABELS = {
    "tumour_navoneel": "Tumours from another collection (navoneel, mixed sequences)",
    "near_ood_brats": "Gliomas in T2-FLAIR (BraTS 2023)",
    "notumor_brisc": "Normal brains from another collection (BRISC 2025)",
    "brain_other_planes_or_sequences": "Full-head T1, no tumour (stroke study)",
    FAR_OOD: "Not brain MRI (photos, X-rays, other body parts)",
}
SEEN_COLLECTION_LABELS = {"tumour_navoneel": "Tumours, new patients of a collection seen in training (navoneel)"}
MEASURES = {
    "tumour_recall": "Tumours found (tumour recall)",
    "notumor_specificity": "Normal scans called normal (specificity)",
    "refused": "Refused by the input check (refusal rate)",
}
COLUMNS = ("Scans", "n", "What is measured", "Rate [95% CI]", "Count")
EVALUATE_EXTERNAL = "python -m core evaluate-external DIR --save"


def unbroken(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with each 'value [low–high]' cell kept on one line on screen (a no-break space before the
    bracket, word joiners around the dash); for narrow tables only, whose other cells can wrap."""
    def cell(value: Any) -> Any:
        return value.replace(" [", "\u00a0[").replace("–", "\u2060–\u2060") if isinstance(value, str) else value

    return frame.map(cell)


def rate_text(value: float, ci: Any = None) -> str:
    """'29.6% [19.1–42.8%]' (the interval only when given)."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f"{value:.1%} [{ci[0]:.1%}–{ci[1]:.1%}]".replace("%–", "–", 1)
    return f"{value:.1%}"


def _row(scans: str, measure: str, rate: Proportion) -> dict[str, Any]:
    return {"Scans": scans, "n": rate.n, "What is measured": MEASURES[measure],
            "Rate [95% CI]": rate_text(rate.value, rate.ci95), "Count": f"{rate.k} of {rate.n}"}


def set_label(name: str, card: Any = None) -> str:
    """The table's name of an external set folder."""
    if card is not None and saw_tumour_collection(card) and name in SEEN_COLLECTION_LABELS:
        return SEEN_COLLECTION_LABELS[name]
    return SET_LABELS.get(name, name)


def external_frame(evaluation: EvaluationRecord, card: Any = None) -> pd.DataFrame:
    """One row per external set, with the rate that matters for it and its Wilson 95% interval: tumour recall for
    sets of tumours, no-tumour specificity for sets of normal scans (each plane on its own row when the card has
    it), and the input check's refusal rate for images that are not brain MRI. Tumour sets first, then normal
    sets, then the rest; a set whose figure is missing or malformed is left out."""
    groups: dict[str, list[dict[str, Any]]] = {"tumour_recall": [], "notumor_specificity": [], "refused": []}
    order = list(SET_LABELS)
    sets = evaluation.external_sets()
    for name in sorted(sets, key=lambda n: (order.index(n) if n in order else len(order), n)):
        result = sets[name]
        measure = next((m for m in ("tumour_recall", "notumor_specificity") if getattr(result, m) is not None), None)
        if measure is not None:
            groups[measure].append(_row(set_label(name, card), measure, getattr(result, measure)))
            for plane, part in result.per_plane.items():
                if getattr(part, measure) is not None:
                    groups[measure].append(_row(f"· {plane} slices", measure, getattr(part, measure)))
    far = evaluation.gate_refusals(FAR_OOD)
    if far is not None:
        groups["refused"].append(_row(set_label(FAR_OOD, card), "refused", far))
    rows = [row for measure in groups for row in groups[measure]]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def show_known_limits(card: Any) -> None:
    """The top of the metrics page: the most important known limit, the others behind an expander."""
    sentences = known_limits(card)
    if sentences:
        st.warning(f"**Known limit.** {sentences[0]}")
        if len(sentences) > 1:
            with st.expander(f"{len(sentences) - 1} more known limit{'s' if len(sentences) > 2 else ''} "
                             "on scans from other collections"):
                st.markdown("\n".join(f"- {s}" for s in sentences[1:]))
    elif card.evaluation_record.external:
        st.success("No known limit: on every external set in this model's card it misses fewer than 1 in 20 "
                   "tumours and calls fewer than 1 in 20 normal scans a tumour (see *Scans from other collections*).")
    else:
        st.info("This model has not been measured on scans from other collections, so how it does on another "
                f"hospital's scans is unknown (`{EVALUATE_EXTERNAL}` measures it).")


def show_external_validation(card: Any) -> None:
    """The metrics page's section on scans from other collections."""
    evaluation = card.evaluation_record
    frame = external_frame(evaluation, card)
    if not evaluation.external:
        st.info(f"This model's card holds no external validation yet (`{EVALUATE_EXTERNAL}`).")
        return
    st.markdown("Images the model never saw, from other public collections. For each set, the rate that matters, "
                "with its 95% interval (Wilson): the share of tumours found for sets of tumours, the share of normal "
                "scans called normal for sets without a tumour (per imaging plane where known), and the share "
                "refused by the input check for images that are not brain MRI. Measured once, for reporting: "
                "nothing was trained, tuned or chosen on these sets.")
    st.table(frame, hide_index=True)
    st.caption(f"Command: `{EVALUATE_EXTERNAL}` (tumour recall and specificity) and `python -m core evaluate "
               "--external DIR --save` (refusals). The sets and their sources are described in "
               "`external-eval/README.md`.")
