"""The metrics page's external validation and known limits: what the model gets wrong on scans from elsewhere.

`external_frame` is pure (unit-tested); `show_known_limits` and `show_external_validation` render with Streamlit.
Every figure comes from the model card (`evaluation.external`, written by `python -m core evaluate-external DIR
--save`, and the input gate's refusals in `evaluation.trust.external`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

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


def _valid(entry: Any) -> bool:
    return (isinstance(entry, Mapping) and isinstance(entry.get("value"), (int, float))
            and isinstance(entry.get("n"), int) and entry["n"] > 0)


def rate_text(value: float, ci: Any = None) -> str:
    """'29.6% [19.1–42.8%]' (the interval only when given)."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f"{value:.1%} [{ci[0]:.1%}–{ci[1]:.1%}]".replace("%–", "–", 1)
    return f"{value:.1%}"


def _row(scans: str, measure: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    n = int(entry["n"])
    k = entry.get("k") if isinstance(entry.get("k"), int) else round(float(entry["value"]) * n)
    return {"Scans": scans, "n": n, "What is measured": MEASURES[measure],
            "Rate [95% CI]": rate_text(float(entry["value"]), entry.get("ci95")), "Count": f"{k} of {n}"}


def set_label(name: str, card: Any = None) -> str:
    """The table's name of an external set folder."""
    if card is not None and saw_tumour_collection(card) and name in SEEN_COLLECTION_LABELS:
        return SEEN_COLLECTION_LABELS[name]
    return SET_LABELS.get(name, name)


def external_frame(evaluation: Mapping[str, Any], card: Any = None) -> pd.DataFrame:
    """One row per external set, with the rate that matters for it and its Wilson 95% interval: tumour recall for
    sets of tumours, no-tumour specificity for sets of normal scans (each plane on its own row when the card has
    it), and the input check's refusal rate for images that are not brain MRI. Tumour sets first, then normal
    sets, then the rest; a set whose figure is missing or malformed is left out."""
    external = evaluation.get("external") if isinstance(evaluation, Mapping) else None
    external = external if isinstance(external, Mapping) else {}
    trust = evaluation.get("trust") if isinstance(evaluation, Mapping) else None
    gate = trust.get("external") if isinstance(trust, Mapping) else None
    gate = gate if isinstance(gate, Mapping) else {}
    groups: dict[str, list[dict[str, Any]]] = {"tumour_recall": [], "notumor_specificity": [], "refused": []}
    order = list(SET_LABELS)
    for name in sorted(external, key=lambda n: (order.index(n) if n in order else len(order), str(n))):
        result = external[name]
        if not isinstance(result, Mapping):
            continue
        label = set_label(str(name), card)
        measure = next((m for m in ("tumour_recall", "notumor_specificity") if _valid(result.get(m))), None)
        if measure is not None:
            groups[measure].append(_row(label, measure, result[measure]))
            planes = result.get("per_plane")
            for plane, part in (planes.items() if isinstance(planes, Mapping) else []):
                if isinstance(part, Mapping) and _valid(part.get(measure)):
                    groups[measure].append(_row(f"· {plane} slices", measure, part[measure]))
    far = gate.get(FAR_OOD)
    if isinstance(far, Mapping) and isinstance(far.get("refused"), (int, float)) and isinstance(far.get("n"), int):
        entry = {"value": far["refused"], "ci95": far.get("refused_ci95"), "n": far["n"]}
        groups["refused"].append(_row(set_label(FAR_OOD, card), "refused", entry))
    rows = [row for measure in groups for row in groups[measure]]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def show_known_limits(card: Any) -> None:
    """The top of the metrics page: the most important known limit, the others behind an expander."""
    sentences = known_limits(card)
    evaluation = getattr(card, "evaluation", None) or {}
    if sentences:
        st.warning(f"**Known limit.** {sentences[0]}")
        if len(sentences) > 1:
            with st.expander(f"{len(sentences) - 1} more known limit{'s' if len(sentences) > 2 else ''} "
                             "on scans from other collections"):
                st.markdown("\n".join(f"- {s}" for s in sentences[1:]))
    elif evaluation.get("external"):
        st.success("No known limit: on every external set in this model's card it misses fewer than 1 in 20 "
                   "tumours and calls fewer than 1 in 20 normal scans a tumour (see *Scans from other collections*).")
    else:
        st.info("This model has not been measured on scans from other collections, so how it does on another "
                f"hospital's scans is unknown (`{EVALUATE_EXTERNAL}` measures it).")


def show_external_validation(card: Any) -> None:
    """The metrics page's section on scans from other collections."""
    evaluation = getattr(card, "evaluation", None) or {}
    frame = external_frame(evaluation, card)
    if not evaluation.get("external"):
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
