"""Where the head is on a scan: a foreground mask used to keep explanations on anatomy.

MRI slices show the head on a dark background. The mask is the largest bright connected region
(Otsu threshold on the lightly blurred grayscale image, closed and hole-filled), so dark structures
inside the skull (ventricles, necrosis) stay inside it. Used by LIME (no superpixels on the
background) and by the agreement check (how much of a map's mass lies outside the head).
"""
from __future__ import annotations

import cv2
import numpy as np

MIN_HEAD_FRACTION = 0.15


def head_mask(image: np.ndarray) -> np.ndarray:
    """Bool (H, W) mask of the head on a (H, W, 3) or (H, W) scan in 0-255; all True if no region of at least
    MIN_HEAD_FRACTION of the image is found (then nothing is excluded)."""
    gray = np.asarray(image, np.float32)
    if gray.ndim == 3:
        gray = gray.mean(axis=-1)
    size = gray.shape[0]
    gray8 = np.clip(gray, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(gray8, (0, 0), max(1.0, size / 128.0))
    threshold, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = (blurred > min(threshold, 0.5 * threshold + 10)).astype(np.uint8)
    k = max(3, int(round(size / 32)) | 1)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count <= 1:
        return np.ones(gray.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == largest).astype(np.uint8)
    flood = np.pad(region, 1) * 255
    holes = flood.copy()
    cv2.floodFill(holes, None, (0, 0), 128)
    filled = (holes != 128)[1:-1, 1:-1]
    # a head fills 35-70% of a slice; a small bright region is a lesion or a marker, not the head
    return filled if filled.mean() > MIN_HEAD_FRACTION else np.ones(gray.shape, bool)


def outside_share(saliency_map: np.ndarray, head: np.ndarray) -> float:
    """Share of the map's positive mass outside the head (NaN for a map with no positive mass)."""
    positive = np.maximum(np.asarray(saliency_map, np.float64), 0.0)
    total = positive.sum()
    return float(positive[~head].sum() / total) if total > 0 else float("nan")
