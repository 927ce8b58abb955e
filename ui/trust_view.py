"""What the app says about knowing when not to answer: refusals, calibrated answers with their conformal sets,
samples whose known class disagrees, and the calibration/conformal/gate figures of the metrics page.

Pure functions (wording, tables, figures) are unit-tested; `show_*` render them with Streamlit."""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.model.assessment import UNCERTAIN_STATES, Assessment, State
from core.model.assessment import percent as format_probability
from core.model.card import class_label
from core.model.card_records import EvaluationRecord
from core.model.trust_records import Calibration, Conformal, FalseRefusals, RiskCoverage, SplitTrust, TrustRecord


def sample_disagreement(known: str | None, prediction: Assessment) -> str | None:
    """For a sample scan with a known class: a sentence when the model's answer is not that class."""
    if not known:
        return None
    if prediction.refused:
        return f"This sample's known class is {class_label(known)}; the gate refused it, so no class is given."
    if prediction.predicted != known:
        in_set = known in (prediction.prediction_set or ())
        tail = " (it is in the prediction set)" if in_set else " (it is not even in the prediction set)" \
            if prediction.prediction_set is not None else ""
        return (f"The model is wrong on this sample: its known class is {class_label(known)}, the model's most "
                f"probable class is {class_label(prediction.predicted or '')}{tail}.")
    return None


def answer_banner(prediction: Assessment) -> tuple[str, str, str]:
    """(kind, headline, subline) of the result's banner: kind is "error" (refused), "warning" (uncertain or low
    confidence) or "success"; in the uncertain states the headline is the state, never a class."""
    state = prediction.state
    if state is State.REFUSED:
        return "error", prediction.headline, prediction.refusal or ""
    probability = format_probability(prediction.confidence or 0.0)
    if state in UNCERTAIN_STATES:
        return ("warning", prediction.headline,
                f"Most probable class: {class_label(prediction.predicted or '')} ({probability}), shown for "
                "reference only.")
    kind = "warning" if state is State.LOW_CONFIDENCE else "success"
    calibrated = " (calibrated)" if prediction.calibrated_model else " (not calibrated)"
    return kind, prediction.headline, f"{probability} probability{calibrated} · {prediction.state_text.lower()}"


def show_answer(prediction: Assessment, known: str | None = None, limit: str | None = None) -> bool:
    """Render the assessment: a refusal (and return False: nothing else may be shown), or the banner with the
    state, the prediction set, the caveats and the model's known limit (and return True)."""
    kind, headline, subline = answer_banner(prediction)
    if prediction.refused:
        st.error(f"**{headline}.** {subline}")
        st.caption("No class, no probabilities and no explanations are given for this file. The input gate refuses "
                   "scans the model was not made for, so that it never gives a diagnosis for them.")
        return False
    colour = {"success": "green", "warning": "orange"}[kind]
    st.markdown(f"<span style='font-size:2.0rem;font-weight:600'>:{colour}[{headline}]</span>",
                unsafe_allow_html=True)
    st.markdown(subline)
    if prediction.prediction_set is not None:
        st.markdown("**Prediction set** (contains the true class in 95% of scans of each class): "
                    + prediction.set_text())
    for warning in prediction.warnings:
        st.warning(warning)
    disagreement = sample_disagreement(known, prediction)
    if disagreement:
        st.warning(disagreement)
    if limit:
        st.caption(f"Known limit: {limit}")
    return True


def reliability_figure(before: Calibration, after: Calibration, title: str) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling (the diagonal = calibrated)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#888"), name="calibrated"))
    for name, metrics, colour in (("before", before, "#d62728"), ("after", after, "#1f77b4")):
        bins = metrics.reliability
        ece = float("nan") if metrics.ece is None else metrics.ece
        fig.add_trace(go.Scatter(x=[b.confidence for b in bins], y=[b.accuracy for b in bins],
                                 mode="lines+markers", name=f"{name} (ECE {ece:.3f})",
                                 marker=dict(size=[4 + min(b.n, 400) ** 0.5 for b in bins], color=colour),
                                 text=[f"n={b.n}" for b in bins]))
    fig.update_xaxes(range=[0, 1], title="confidence (top probability)")
    fig.update_yaxes(range=[0, 1.02], title="accuracy")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title=title)
    return fig


def risk_coverage_figure(curves: RiskCoverage) -> go.Figure:
    """Share of scans answered against the accuracy of those answers, for single-class conformal sets at several
    coverage levels and for a threshold on the calibrated top probability."""
    fig = go.Figure()
    conformal = curves.conformal
    fig.add_trace(go.Scatter(x=[p.answered for p in conformal], y=[p.accuracy for p in conformal],
                             mode="lines+markers", name="single-class conformal set",
                             text=[f"{p.confidence:.1%} coverage" for p in conformal]))
    top = [p for p in curves.top_probability if p.accuracy is not None]
    fig.add_trace(go.Scatter(x=[p.answered for p in top], y=[p.accuracy for p in top], mode="lines",
                             name="top probability ≥ threshold", text=[f"≥ {p.threshold:.3f}" for p in top]))
    fig.update_xaxes(title="share of scans answered with one class", tickformat=".0%")
    fig.update_yaxes(title="accuracy of those answers", tickformat=".1%")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), title="Risk–coverage (test split)")
    return fig


def _pct(value: Any, ci: Any = None) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" + (f" [{ci[0]:.1%}–{ci[1]:.1%}]" if ci else "")


def _split(trust: TrustRecord, part: str) -> SplitTrust:
    split = trust.split(part)
    if split is None:
        raise KeyError(f"the card's trust evaluation has no {part!r} split")
    return split


def calibration_frame(trust: TrustRecord, part: str = "test") -> pd.DataFrame:
    """ECE / NLL / Brier before and after, overall and per class."""
    split = _split(trust, part)
    before, after = split.calibration_before or Calibration(), split.calibration_after or Calibration()
    rows = [_calibration_row("all scans", before, after)]
    for name, b in before.per_class.items():
        rows.append(_calibration_row(class_label(name), b, after.per_class[name]))
    return pd.DataFrame(rows).set_index("")


CALIBRATION_COLUMNS = {"ece": "Probability vs reality gap (ECE)", "nll": "Surprise at the truth (log loss, NLL)",
                       "brier": "Squared probability error (Brier)"}


def _calibration_row(label: str, before: Calibration, after: Calibration) -> dict[str, Any]:
    row: dict[str, Any] = {"": label, "scans (n)": before.n}
    for key, name in CALIBRATION_COLUMNS.items():
        row[f"{name}, before"] = getattr(before, key)
        row[f"{name}, after"] = getattr(after, key)
    return row


def _conformal_row(label: str, c: Conformal) -> dict[str, Any]:
    return {"": label, "scans (n)": c.n, "Set holds the true class (coverage)": _pct(c.coverage, c.coverage_ci95),
            "Classes per set (mean set size)": c.mean_set_size, "Single-class answers": _pct(c.single_share)}


def conformal_frame(trust: TrustRecord, part: str = "test") -> pd.DataFrame:
    """Coverage and mean set size per class and overall."""
    c = _split(trust, part).conformal or Conformal()
    rows = [_conformal_row("all scans", c)]
    rows += [_conformal_row(class_label(name), v) for name, v in c.per_class.items()]
    return pd.DataFrame(rows).set_index("")


def gate_frame(trust: TrustRecord) -> pd.DataFrame:
    """The gate's refusals on the test split and, when measured, per external set with AUROC and FPR@95%TPR."""
    f = trust.test_false_refusal or FalseRefusals()
    separation = "Tells the set from Testing scans (AUROC)"
    passed = "Testing scans passed when 95% of the set is caught (FPR at 95% TPR)"
    rows = [{"set": "Testing (should be accepted)", "scans (n)": f.n, "Refused": _pct(f.rate, f.rate_ci95),
             separation: "", passed: ""}]
    for name, e in trust.external.items():
        rows.append({"set": name, "scans (n)": e.n, "Refused": _pct(e.refused, e.refused_ci95),
                     separation: "–" if e.auroc is None or e.auroc_ci95 is None else
                     f"{e.auroc:.3f} [{e.auroc_ci95[0]:.3f}–{e.auroc_ci95[1]:.3f}]",
                     passed: _pct(e.fpr_at_95tpr)})
    return pd.DataFrame(rows).set_index("set")


def show_trust_metrics(evaluation: EvaluationRecord) -> None:
    """The metrics page's section on calibration, prediction sets and the input gate."""
    trust = evaluation.trust
    test = trust.test if trust is not None else None
    if trust is None or test is None:
        st.info("No calibration or input-gate evaluation in this model's card yet: run `python -m core calibrate "
                "--data DIR` and then `python -m core evaluate --data DIR --save`.")
        return
    single = test.conformal or Conformal()
    st.markdown(f"Temperature scaling (T = {trust.temperature:.3f}) and class-conditional conformal sets at "
                f"{trust.confidence:.0%} coverage were fitted on the validation split; everything here is measured "
                f"on the test split. **{_pct(single.single_share)}** of test scans get a single class, and those "
                f"answers are right **{_pct(single.single_accuracy, single.single_accuracy_ci95)}** of the time.")
    left, right = st.columns(2)
    left.plotly_chart(reliability_figure(test.calibration_before or Calibration(),
                                         test.calibration_after or Calibration(), "Reliability (test split)"),
                      key="reliability")
    right.plotly_chart(risk_coverage_figure(trust.risk_coverage or RiskCoverage()), key="risk_coverage")
    st.dataframe(calibration_frame(trust), width="stretch")
    st.dataframe(conformal_frame(trust), width="stretch")
    st.subheader("Input gate")
    st.caption(f"Learned score: {trust.gate_score} (chosen by measurement on self-built negatives; threshold "
               f"{trust.gate_threshold:.4g}). AUROC and FPR compare each set with the Testing scans.")
    st.dataframe(gate_frame(trust), width="stretch")
