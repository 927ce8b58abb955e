"""Overlays: pure RGB uint8 functions; colours mean what the legend says."""
from __future__ import annotations

import numpy as np
import pytest

from core.xai import overlays
from core.xai.explainers.base import Explanation

IMAGE = np.full((16, 16, 3), 100, np.uint8)


def _expl(method: str, signed: bool, heat: np.ndarray, extras: dict | None = None) -> Explanation:
    return Explanation(method, heat.astype(np.float32), 0, {}, 0.1, signed, "", extras or {})


def test_heatmap_overlay_shape_type_and_no_mutation():
    image = IMAGE.copy()
    out = overlays.heatmap_overlay(image, np.linspace(0, 1, 64).reshape(8, 8))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.array_equal(image, IMAGE)
    assert np.array_equal(overlays.heatmap_overlay(image, np.ones((16, 16)), alpha=0.0), image)


def test_signed_overlay_red_supports_blue_contradicts():
    signed = np.zeros((16, 16))
    signed[:8] = 1.0
    signed[8:] = -1.0
    out = overlays.signed_overlay(IMAGE, signed, alpha=1.0).astype(int)
    assert out[2, 2, 0] > out[2, 2, 2] and out[12, 2, 2] > out[12, 2, 0]
    assert np.array_equal(overlays.signed_overlay(IMAGE, np.zeros((16, 16))), IMAGE)


def test_region_overlay_draws_boundaries_between_segments():
    segments = np.zeros((16, 16), int)
    segments[:, 8:] = 1
    out = overlays.region_overlay(IMAGE, np.where(segments == 1, 0.5, -0.5), segments=segments)
    assert tuple(out[4, 7]) == (255, 220, 0) and tuple(out[4, 2]) != (255, 220, 0)


@pytest.mark.parametrize("explanation, expected", [
    (_expl("scorecam", False, np.ones((16, 16))), "heatmap_overlay"),
    (_expl("shap", True, np.ones((16, 16))), "signed_overlay"),
    (_expl("lime", False, np.ones((16, 16)), {"segments": np.zeros((16, 16), int),
                                              "signed_map": np.ones((16, 16))}), "region_overlay"),
])
def test_overlay_for_picks_the_method_overlay(monkeypatch, explanation, expected):
    called = []
    monkeypatch.setattr(overlays, expected, lambda *a, **k: called.append(expected) or IMAGE)
    overlays.overlay_for(explanation, IMAGE)
    assert called == [expected]


def test_colorbars_and_side_by_side():
    assert overlays.colorbar("heatmap", 100, 5).shape == (5, 100, 3)
    signed = overlays.colorbar("signed", 100, 5).astype(int)
    assert signed[0, 0, 2] > signed[0, 0, 0] and signed[0, -1, 0] > signed[0, -1, 2]
    assert overlays.side_by_side(IMAGE, IMAGE, gap=4).shape == (16, 36, 3)
