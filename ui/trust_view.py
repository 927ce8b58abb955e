"""What the app says about knowing when not to answer: refusals, calibrated answers with their conformal sets,
samples whose known class disagrees, and the calibration/conformal/gate figures of the metrics page.

Pure functions (wording, tables, figures) are unit-tested; `show_*` render them with Streamlit."""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.model.card import class_label
from core.model.inference import Prediction

REFUSAL_TITLES = {"metadata": "Not an MRI", "learned": "Not a brain MRI slice"}
UNSURE_FALLBACK = 0.70  # an uncalibrated model folder keeps the old low-confidence rule


def refusal_title(prediction: Prediction) -> str:
    """A short title for a refused scan."""
    layer = prediction.refusal_layer or ""
    return REFUSAL_TITLES.get(layer, "Not a usable scan" if layer.startswith("image") else "Not answered")


def set_labels(prediction: Prediction) -> list[str]:
    return [class_label(c) for c in prediction.prediction_set or []]


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def uncertainty_message(prediction: Prediction) -> str | None:
    """Why an accepted answer should be read with care, or None: the conformal set holds several classes (or none),
    or - for a folder without calibration - the top probability is below 70%."""
    if prediction.refused:
        return None
    if prediction.prediction_set is None:
        if prediction.confidence is not None and prediction.confidence < UNSURE_FALLBACK:
            return (f"Low confidence: the top probability is below {UNSURE_FALLBACK:.0%} (this model folder is not "
                    "calibrated, so no prediction set is available). Rely on the full radiological reading.")
        return None
    names = [n.lower() if n != "No tumour" else "no tumour" for n in set_labels(prediction)]
    if len(names) > 1:
        return (f"The model cannot tell {_join(names)} apart here: all of them stay possible at the "
                "chosen coverage. Rely on the full radiological reading.")
    if not names:
        return ("No class is plausible enough at the chosen coverage (empty prediction set): the scan is unusual "
                "for this model. Rely on the full radiological reading.")
    if prediction.prediction_set != [prediction.predicted]:
        return (f"The prediction set ({names[0]}) does not hold the most probable class "
                f"({class_label(prediction.predicted or '').lower()}): measured against scans of each class, this "
                f"one looks more like {names[0]}. Treat the answer as uncertain and rely on the full radiological "
                "reading.")
    return None


def sample_disagreement(known: str | None, prediction: Prediction) -> str | None:
    """For a sample scan with a known class: a sentence when the model's answer is not that class."""
    if not known:
        return None
    if prediction.refused:
        return f"This sample's known class is {class_label(known)}; the gate refused it, so no class is given."
    if prediction.answer != known:
        in_set = known in (prediction.prediction_set or [])
        tail = " (it is in the prediction set)" if in_set else " (it is not even in the prediction set)" \
            if prediction.prediction_set is not None else ""
        return (f"The model is wrong on this sample: its known class is {class_label(known)}, the model says "
                f"{class_label(prediction.answer or '')}{tail}.")
    return None


def trust_columns(prediction: Prediction) -> dict[str, Any]:
    """The batch table's and CSV's extra columns for one scan."""
    return {"in distribution": prediction.in_distribution,
            "ood score": None if prediction.ood_score is None else round(prediction.ood_score, 4),
            "refusal": prediction.refusal or "",
            "prediction set": "; ".join(set_labels(prediction)) if prediction.prediction_set is not None else "",
            "calibrated": prediction.calibrated}


def show_answer(prediction: Prediction, known: str | None = None) -> bool:
    """Render a refusal (and return False) or the answer's uncertainty notes (and return True)."""
    if prediction.refused:
        st.error(f"**{refusal_title(prediction)}.** {prediction.refusal}")
        st.caption("No class is given for this file. The input gate refuses scans the model was not made for, "
                   "so that it never gives a confident diagnosis for them.")
        return False
    if prediction.prediction_set is not None:
        st.markdown("**Prediction set** (contains the true class in 95% of scans of each class): "
                    + (", ".join(set_labels(prediction)) or "empty"))
    else:
        st.caption("This model folder is not calibrated (no input gate score, no prediction set): run "
                   "`python -m core calibrate`.")
    message = uncertainty_message(prediction)
    if message:
        st.warning(message)
    disagreement = sample_disagreement(known, prediction)
    if disagreement:
        st.warning(disagreement)
    return True


def reliability_figure(before: dict[str, Any], after: dict[str, Any], title: str) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling (the diagonal = calibrated)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#888"), name="calibrated"))
    for name, metrics, colour in (("before", before, "#d62728"), ("after", after, "#1f77b4")):
        bins = metrics.get("reliability", [])
        fig.add_trace(go.Scatter(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins],
                                 mode="lines+markers", name=f"{name} (ECE {metrics.get('ece', float('nan')):.3f})",
                                 marker=dict(size=[4 + min(b["n"], 400) ** 0.5 for b in bins], color=colour),
                                 text=[f"n={b['n']}" for b in bins]))
    fig.update_xaxes(range=[0, 1], title="confidence (top probability)")
    fig.update_yaxes(range=[0, 1.02], title="accuracy")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title=title)
    return fig


def risk_coverage_figure(curves: dict[str, Any]) -> go.Figure:
    """Share of scans answered against the accuracy of those answers, for single-class conformal sets at several
    coverage levels and for a threshold on the calibrated top probability."""
    fig = go.Figure()
    conformal = curves.get("conformal", [])
    fig.add_trace(go.Scatter(x=[p["answered"] for p in conformal], y=[p["accuracy"] for p in conformal],
                             mode="lines+markers", name="single-class conformal set",
                             text=[f"{p['confidence']:.1%} coverage" for p in conformal]))
    top = [p for p in curves.get("top_probability", []) if p["accuracy"] is not None]
    fig.add_trace(go.Scatter(x=[p["answered"] for p in top], y=[p["accuracy"] for p in top], mode="lines",
                             name="top probability ≥ threshold", text=[f"≥ {p['threshold']:.3f}" for p in top]))
    fig.update_xaxes(title="share of scans answered with one class", tickformat=".0%")
    fig.update_yaxes(title="accuracy of those answers", tickformat=".1%")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title="Risk–coverage (test split)")
    return fig


def _pct(value: Any, ci: Any = None) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" + (f" [{ci[0]:.1%}–{ci[1]:.1%}]" if ci else "")


def calibration_frame(trust: dict[str, Any], part: str = "test") -> pd.DataFrame:
    """ECE / NLL / Brier before and after, overall and per class."""
    before, after = trust[part]["calibration_before"], trust[part]["calibration_after"]
    rows = [{"": "all scans", "n": before["n"], "ECE before": before["ece"], "ECE after": after["ece"],
             "NLL before": before["nll"], "NLL after": after["nll"], "Brier before": before["brier"],
             "Brier after": after["brier"]}]
    for name, b in before.get("per_class", {}).items():
        a = after["per_class"][name]
        rows.append({"": class_label(name), "n": b["n"], "ECE before": b["ece"], "ECE after": a["ece"],
                     "NLL before": b["nll"], "NLL after": a["nll"], "Brier before": b["brier"], "Brier after": a["brier"]})
    return pd.DataFrame(rows).set_index("")


def conformal_frame(trust: dict[str, Any], part: str = "test") -> pd.DataFrame:
    """Coverage and mean set size per class and overall."""
    c = trust[part]["conformal"]
    rows = [{"": "all scans", "n": c["n"], "coverage": _pct(c["coverage"], c["coverage_ci95"]),
             "mean set size": c["mean_set_size"], "single-class answers": _pct(c["single_share"])}]
    for name, v in c["per_class"].items():
        rows.append({"": class_label(name), "n": v["n"], "coverage": _pct(v["coverage"], v["coverage_ci95"]),
                     "mean set size": v["mean_set_size"], "single-class answers": _pct(v["single_share"])})
    return pd.DataFrame(rows).set_index("")


def gate_frame(trust: dict[str, Any]) -> pd.DataFrame:
    """The gate's refusals on the test split and, when measured, per external set with AUROC and FPR@95%TPR."""
    f = trust["test_false_refusal"]
    rows = [{"set": "Testing (should be accepted)", "n": f["n"], "refused": _pct(f["rate"], f["rate_ci95"]),
             "AUROC": "", "FPR at 95% TPR": ""}]
    for name, e in trust.get("external", {}).items():
        auroc = e.get("auroc")
        rows.append({"set": name, "n": e["n"], "refused": _pct(e["refused"], e["refused_ci95"]),
                     "AUROC": "–" if auroc is None else f"{auroc:.3f} [{e['auroc_ci95'][0]:.3f}–{e['auroc_ci95'][1]:.3f}]",
                     "FPR at 95% TPR": _pct(e.get("fpr_at_95tpr"))})
    return pd.DataFrame(rows).set_index("set")


def show_trust_metrics(evaluation: dict[str, Any]) -> None:
    """The metrics page's section on calibration, prediction sets and the input gate."""
    trust = evaluation.get("trust")
    if not trust or "test" not in trust:
        st.info("No calibration or input-gate evaluation in this model's card yet: run `python -m core calibrate "
                "--data DIR` and then `python -m core evaluate --data DIR --save`.")
        return
    single = trust["test"]["conformal"]
    st.markdown(f"Temperature scaling (T = {trust['temperature']:.3f}) and class-conditional conformal sets at "
                f"{trust['confidence']:.0%} coverage were fitted on the validation split; everything here is measured "
                f"on the test split. **{_pct(single['single_share'])}** of test scans get a single class, and those "
                f"answers are right **{_pct(single['single_accuracy'], single['single_accuracy_ci95'])}** of the time.")
    left, right = st.columns(2)
    left.plotly_chart(reliability_figure(trust["test"]["calibration_before"], trust["test"]["calibration_after"],
                                         "Reliability (test split)"), key="reliability")
    right.plotly_chart(risk_coverage_figure(trust["risk_coverage"]), key="risk_coverage")
    st.dataframe(calibration_frame(trust), width="stretch")
    st.dataframe(conformal_frame(trust), width="stretch")
    st.subheader("Input gate")
    st.caption(f"Learned score: {trust['gate_score']} (chosen by measurement on self-built negatives; threshold "
               f"{trust['gate_threshold']:.4g}). AUROC and FPR compare each set with the Testing scans.")
    st.dataframe(gate_frame(trust), width="stretch")
