"""Overlays: explanation maps drawn on the scan. Pure functions, RGB uint8 in and out.

heatmap_overlay - a [0, 1] map in a colormap (Score-CAM);
signed_overlay  - a signed map, red = supports the class, blue = contradicts (SHAP), optionally smoothed,
                  clipped at a percentile and reduced to its positive side so that it is visible;
region_overlay  - superpixel weights with region boundaries (LIME);
overlay_for     - picks the right one for an Explanation; colorbar draws the matching legend;
draw_outline    - an expert mask's outline on top of any overlay.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from core.xai.explainers import EXPLAINERS


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.clip(image, 0, 255).astype(np.uint8)


def _fit(values: np.ndarray, shape: tuple[int, ...], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    values = np.asarray(values, np.float32)
    if values.shape != shape[:2]:
        values = cv2.resize(values, (shape[1], shape[0]), interpolation=interpolation)
    return values


def _blend(image: np.ndarray, colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per-pixel alpha blend: weight (H, W) in [0, 1]."""
    w = weight[:, :, None]
    return np.clip(image.astype(np.float32) * (1 - w) + colour.astype(np.float32) * w + 0.5, 0, 255).astype(np.uint8)


def heatmap_overlay(image_uint8: np.ndarray, heat01: np.ndarray, alpha: float = 0.5,
                    colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Scan with a [0, 1] heatmap blended in at opacity `alpha`."""
    image = _as_uint8_rgb(image_uint8)
    heat = np.clip(_fit(heat01, image.shape), 0, 1)
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), colormap), cv2.COLOR_BGR2RGB)
    return _blend(image, colour, np.full(heat.shape, alpha, np.float32))


def signed_colours(signed_map: np.ndarray, clip_percentile: float = 99.5) -> tuple[np.ndarray, np.ndarray]:
    """Colour (H, W, 3) and strength (H, W) in [0, 1]: red for positive, blue for negative values; values
    beyond the `clip_percentile` of |values| get full strength."""
    values = np.asarray(signed_map, np.float32)
    scale = float(np.percentile(np.abs(values), clip_percentile)) or float(np.abs(values).max()) or 1.0
    strength = np.clip(np.abs(values) / scale, 0, 1)
    colour = np.zeros(values.shape + (3,), np.uint8)
    colour[values > 0] = (220, 30, 30)
    colour[values < 0] = (30, 80, 230)
    return colour, strength


SIGNED_DISPLAY = {"smooth_sigma": 2.0, "clip_percentile": 99.0, "positive_only": False}


def display_signed(signed_map: np.ndarray, smooth_sigma: float = 2.0, positive_only: bool = False) -> np.ndarray:
    """A signed per-pixel map made readable: Gaussian smoothing (sigma in pixels at 224 px, scaled to the
    map) turns speckle into regions; `positive_only` keeps the evidence for the class alone."""
    values = np.asarray(signed_map, np.float32)
    if smooth_sigma > 0:
        values = cv2.GaussianBlur(values, (0, 0), smooth_sigma * values.shape[0] / 224.0)
    return np.maximum(values, 0.0) if positive_only else values


def signed_overlay(image_uint8: np.ndarray, signed_map: np.ndarray, alpha: float = 0.5, smooth_sigma: float = 0.0,
                   clip_percentile: float = 99.5, positive_only: bool = False) -> np.ndarray:
    """Diverging overlay: red = supports the class, blue = contradicts; opacity grows with |value| up to the
    `clip_percentile` of |values| (so a few extreme pixels do not make the rest invisible)."""
    image = _as_uint8_rgb(image_uint8)
    values = display_signed(signed_map, smooth_sigma, positive_only)
    colour, strength = signed_colours(_fit(values, image.shape), clip_percentile)
    return _blend(image, colour, alpha * strength)


def region_overlay(image_uint8: np.ndarray, weights_map: np.ndarray, alpha: float = 0.5,
                   segments: np.ndarray | None = None) -> np.ndarray:
    """Region weights (signed or [0, 1], constant per superpixel) with the region boundaries drawn."""
    image = _as_uint8_rgb(image_uint8)
    weights = _fit(weights_map, image.shape, cv2.INTER_NEAREST)
    colour, strength = signed_colours(weights)
    out = _blend(image, colour, alpha * strength)
    labels = segments if segments is not None else np.unique(weights, return_inverse=True)[1].reshape(weights.shape)
    labels = _fit(labels, image.shape, cv2.INTER_NEAREST).astype(np.int64)
    edges = np.zeros(labels.shape, bool)
    edges[:-1] |= labels[:-1] != labels[1:]
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[edges] = (255, 220, 0)
    return out


def overlay_kind(explanation: Any) -> str:
    """The overlay that suits the method: its registry entry's display hint ('regions' for LIME, 'signed' for
    SHAP, 'heatmap' for Score-CAM). A map of an unregistered method (a test's, a benchmark's reference) is drawn
    by what it carries: regions when it has LIME's segments, signed when it is signed, else a heatmap.

    The one dispatcher: `overlay_for` draws by it and the app picks the matching legend by it.
    """
    spec = EXPLAINERS.get(getattr(explanation, "method", ""))
    if spec is not None:
        return spec.overlay
    extras = getattr(explanation, "extras", {}) or {}
    if "segments" in extras and "signed_map" in extras:
        return "regions"
    return "signed" if explanation.signed else "heatmap"


def overlay_for(explanation: Any, image_uint8: np.ndarray, alpha: float = 0.5, positive_only: bool = False
                ) -> np.ndarray:
    """The explanation drawn on the scan, as `overlay_kind` says; signed maps with SIGNED_DISPLAY
    (smoothed, clipped at the 99th percentile), `positive_only` hides the evidence against the class."""
    kind = overlay_kind(explanation)
    if kind == "regions":
        return region_overlay(image_uint8, explanation.extras["signed_map"], alpha, explanation.extras["segments"])
    if kind == "signed":
        return signed_overlay(image_uint8, explanation.map, alpha, SIGNED_DISPLAY["smooth_sigma"],
                              SIGNED_DISPLAY["clip_percentile"], positive_only)
    return heatmap_overlay(image_uint8, explanation.map, alpha)


def draw_outline(image_uint8: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0),
                 thickness: int = 0) -> np.ndarray:
    """A copy of the image with the outline of a bool mask (any resolution: scaled to the image) drawn on it."""
    image = _as_uint8_rgb(image_uint8).copy()
    scaled = _fit(np.asarray(mask, np.float32), image.shape) >= 0.5
    contours, _ = cv2.findContours(scaled.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, colour, thickness or max(1, image.shape[0] // 200))
    return image


def colorbar(kind: str, width: int = 256, height: int = 16, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A legend strip (RGB uint8): 'heatmap' low->high, 'signed' blue (contradicts) -> red (supports)."""
    ramp = np.linspace(0, 1, width, dtype=np.float32)
    if kind == "heatmap":
        row = cv2.cvtColor(cv2.applyColorMap((ramp * 255).astype(np.uint8)[None], colormap), cv2.COLOR_BGR2RGB)[0]
    elif kind == "signed":
        colour, strength = signed_colours(ramp * 2 - 1)
        row = _blend(np.full((width, 3), 255, np.uint8)[None], colour[None], strength[None])[0]
    else:
        raise ValueError(f"colorbar kind must be 'heatmap' or 'signed', got {kind!r}")
    return np.repeat(row[None], height, axis=0)


def side_by_side(image_uint8: np.ndarray, overlay: np.ndarray, gap: int = 4) -> np.ndarray:
    """The scan and its overlay next to each other (for `python -m core explain --out`)."""
    image = _as_uint8_rgb(image_uint8)
    spacer = np.full((image.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([image, spacer, _as_uint8_rgb(overlay)], axis=1)
