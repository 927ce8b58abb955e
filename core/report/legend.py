"""Overlays as stand-alone pictures: the overlay with its colour legend and end labels underneath.

Used for the PNG downloads and in the PDF, so an overlay never leaves the app without its legend.
"""
from __future__ import annotations

import cv2
import numpy as np

from core.xai.overlays import colorbar

LEGEND_TEXT = {
    "heatmap": ("low relevance", "high relevance for {label}"),
    "signed": ("against {label}", "for {label}"),
    "regions": ("region against {label}", "region for {label}"),
}


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float, align: str = "left") -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    text = text.encode("ascii", "replace").decode()  # OpenCV's fonts are ASCII
    width = cv2.getTextSize(text, font, scale, 1)[0][0]
    if align == "right":
        x -= width
    elif align == "center":
        x -= width // 2
    cv2.putText(canvas, text, (x, y), font, scale, (20, 20, 20), 1, cv2.LINE_AA)


def legend_strip(kind: str, label: str, width: int) -> np.ndarray:
    """A white strip (RGB uint8): the colour bar of `kind` and its end labels naming the class."""
    scale = max(0.35, min(0.6, width / 900))
    height = int(22 + 34 * scale / 0.45)
    strip = np.full((height, width, 3), 255, np.uint8)
    bar = colorbar("heatmap" if kind == "heatmap" else "signed", width - 16, 12)
    strip[6:18, 8:width - 8] = bar
    left, right = (t.format(label=label) for t in LEGEND_TEXT[kind])
    baseline = 18 + int(22 * scale / 0.45)
    _text(strip, left, 8, baseline, scale)
    _text(strip, right, width - 8, baseline, scale, "right")
    if kind != "heatmap":
        _text(strip, "0", width // 2, baseline, scale, "center")
    return strip


def overlay_with_legend(overlay: np.ndarray, kind: str, label: str, title: str | None = None) -> np.ndarray:
    """The overlay (RGB uint8) above its legend, with an optional title line on top."""
    overlay = np.asarray(overlay, np.uint8)
    width = max(overlay.shape[1], 256)
    if overlay.shape[1] < width:
        factor = width / overlay.shape[1]
        overlay = cv2.resize(overlay, (width, round(overlay.shape[0] * factor)), interpolation=cv2.INTER_NEAREST)
    parts = [overlay, legend_strip(kind, label, width)]
    if title:
        head = np.full((28, width, 3), 255, np.uint8)
        _text(head, title, 8, 20, 0.55)
        parts.insert(0, head)
    return np.concatenate(parts, axis=0)


def png_bytes(image: np.ndarray) -> bytes:
    """RGB uint8 as PNG bytes."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - encoding a uint8 RGB array does not fail
        raise ValueError("cannot encode PNG")
    return data.tobytes()
