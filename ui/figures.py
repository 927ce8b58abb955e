"""Plotly figures for the app: probabilities, confusion matrices, ROC, training and XAI curves."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.model.card import class_label
from ui.presentation import confusion, format_probability

PREDICTED_COLOUR = "#4FC3F7"
OTHER_COLOUR = "#5C6B7A"
CONFUSION_SCALE = [[0.0, "#161B24"], [1.0, "#1E88E5"]]
LINE_COLOURS = ("#4FC3F7", "#FFB74D", "#81C784", "#E57373", "#BA68C8", "#A1887F")


def _layout(fig: go.Figure, height: int, **kwargs: Any) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), **kwargs)
    return fig


def probability_bars(probabilities: dict[str, float], predicted: str) -> go.Figure:
    """Horizontal bars, one per class in clinical wording; the predicted class highlighted."""
    names = list(probabilities)[::-1]
    values = [probabilities[n] for n in names]
    fig = go.Figure(go.Bar(
        x=values, y=[class_label(n) for n in names], orientation="h",
        marker_color=[PREDICTED_COLOUR if n == predicted else OTHER_COLOUR for n in names],
        text=[format_probability(v) for v in values], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1.12], tickformat=".0%", title="probability")
    return _layout(fig, 220, showlegend=False, title="Class probabilities")


def confusion_heatmap(matrix: list[list[int]], class_names: list[str], normalised: bool, title: str) -> go.Figure:
    """Rows = true class, columns = predicted class; counts or row-normalised rates."""
    values = confusion(matrix, normalised)
    labels = [class_label(c) for c in class_names]
    text = [[f"{v:.0%}" if normalised else f"{int(v)}" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values.tolist(), x=labels, y=labels, text=text, texttemplate="%{text}", colorscale=CONFUSION_SCALE,
        zmin=0, zmax=1 if normalised else None, showscale=False, xgap=2, ygap=2,
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class", side="bottom", tickangle=-30)
    return _layout(fig, 400, title=title)


def roc_curves(roc: dict[str, dict[str, list[float]]]) -> go.Figure:
    """One-vs-rest ROC curve per class with the chance diagonal."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                               line=dict(dash="dot", color="#777777")))
    for colour, (name, curve) in zip(LINE_COLOURS, roc.items()):
        fpr, tpr = np.asarray(curve["fpr"]), np.asarray(curve["tpr"])
        auc = float(np.trapezoid(tpr, fpr))
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", line=dict(color=colour),
                                 name=f"{class_label(name)} (AUC {auc:.3f})"))
    fig.update_xaxes(title="1 − specificity (false-positive rate)", range=[0, 1])
    fig.update_yaxes(title="sensitivity (true-positive rate)", range=[0, 1.02])
    return _layout(fig, 380, title="ROC curves (one class vs rest)")


def phase_boundaries(history: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """(x, phase name) where each phase after the first starts, x between global epochs."""
    marks, previous = [], None
    for row in history:
        if previous is not None and row.get("phase") != previous:
            marks.append((row["global_epoch"] - 0.5, str(row.get("phase"))))
        previous = row.get("phase")
    return marks


def training_curves(history: list[dict[str, Any]], stacked: bool = False) -> go.Figure:
    """Loss and accuracy per epoch (training and validation), with phase boundaries marked.

    Side by side, or one above the other (`stacked`) for narrow places such as the sidebar."""
    rows, cols = (2, 1) if stacked else (1, 2)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=("Loss", "Accuracy"), vertical_spacing=0.3)
    epochs = [row.get("global_epoch") for row in history]
    for index, metric in ((1, "loss"), (2, "accuracy")):
        row_i, col = (index, 1) if stacked else (1, index)
        for key, name, colour in ((metric, "training", LINE_COLOURS[0]), (f"val_{metric}", "validation", LINE_COLOURS[1])):
            fig.add_trace(go.Scatter(x=epochs, y=[row.get(key) for row in history], mode="lines+markers",
                                     name=name, legendgroup=name, showlegend=index == 1,
                                     line=dict(color=colour)), row=row_i, col=col)
        for x, phase in phase_boundaries(history):
            label = {"annotation_text": f"{phase} starts"} if index == 1 else {}
            fig.add_vline(x=x, line=dict(dash="dash", color="#999999"), row=row_i, col=col, **label)
    if stacked:
        fig.update_xaxes(title="epoch", row=2, col=1)
        return _layout(fig, 380, legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title="epoch")
    return _layout(fig, 320)


def xai_curves(curves: dict[str, tuple[Iterable[float], Iterable[float]]], title: str, x_title: str) -> go.Figure:
    """Deletion or insertion curves: class probability against the fraction of pixels changed."""
    fig = go.Figure()
    for colour, (name, (x, y)) in zip(LINE_COLOURS, curves.items()):
        fig.add_trace(go.Scatter(x=list(x), y=list(y), mode="lines", name=name, line=dict(color=colour)))
    fig.update_xaxes(title=x_title, range=[0, 1])
    fig.update_yaxes(title="probability of the class", range=[0, 1.02])
    return _layout(fig, 300, title=title)
