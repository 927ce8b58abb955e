"""Gate layer 2: pixel rules that need no fitting. Thresholds are far outside what brain MRI slices show
(measured on the Training scans: see docs/trust.md, "The input gate")."""
from __future__ import annotations

import cv2
import numpy as np

MIN_STD = 3.0             # gray levels; a blank, black or uniform image has ~0
MIN_RANGE = 16            # gray levels between the 1st and 99th percentile
SATURATION = 0.25         # a pixel is "coloured" above this HSV saturation (0-1) ...
MIN_VALUE = 0.15          # ... and this brightness (dark pixels have meaningless hue)
MAX_COLOUR_SHARE = 0.10   # refuse when more than this share of the image's pixels is coloured


def non_finite(image: np.ndarray, non_finite_share: float) -> str | None:
    """Refuse a file whose raw pixels hold NaN or infinite values."""
    if non_finite_share > 0:
        return (f"The image holds NaN or infinite pixel values ({non_finite_share:.1%} of pixels); "
                "it is not a valid scan.")
    return None


def no_variation(image: np.ndarray, non_finite_share: float = 0.0) -> str | None:
    """Refuse a blank, uniform or almost uniform image."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    lo, hi = np.percentile(gray, (1, 99))
    if float(gray.std()) < MIN_STD or hi - lo < MIN_RANGE:
        return "The image is blank or almost uniform (no structure to read); it is not a brain MRI slice."
    return None


def colour_share(image: np.ndarray) -> float:
    """Share of pixels that are clearly coloured (HSV saturation and brightness above the rule's limits)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    coloured = (hsv[..., 1] > SATURATION * 255) & (hsv[..., 2] > MIN_VALUE * 255)
    return float(coloured.mean())


def mostly_colour(image: np.ndarray, non_finite_share: float = 0.0) -> str | None:
    """Refuse a colour photograph or a colour-mapped image: MRI slices are grayscale."""
    share = colour_share(image)
    if share > MAX_COLOUR_SHARE:
        return (f"This is a colour image ({share:.0%} of its pixels are coloured); MRI slices are grayscale, "
                "so it is not a brain MRI slice.")
    return None
