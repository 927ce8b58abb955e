"""The input gate: decides, before any class is shown, whether a file is a brain MRI slice of the kind the model knows.

Layered, cheapest first, each layer with a reason a clinician can read:
1. `metadata`: a DICOM header whose Modality is not MR (CT, ultrasound, X-ray, ...), read without decoding pixels;
2. `image_checks`: pixel rules that need no fitting (NaN/inf values, no variation, mostly colour);
3. `scores`: a learned out-of-distribution score on the classifier's own features, with a threshold, both fitted
   per model folder (`trust.json` / `trust.npz`, see `core.model.trust`).
A new rule = one module with `check(...)` + one entry in `RULES`; a new learned score = one class in
`scores.SCORES`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from core.io.scan import Scan
from core.model.gate import image_checks, metadata


@dataclass(frozen=True)
class Refusal:
    """Why the gate refused a scan: the layer that decided and one line for the user."""

    layer: str
    reason: str


# Pixel rules, in order; each takes the decoded RGB uint8 image and the raw file's NaN/inf share.
RULES: dict[str, Callable[[np.ndarray, float], str | None]] = {
    "non_finite": image_checks.non_finite,
    "no_variation": image_checks.no_variation,
    "colour": image_checks.mostly_colour,
}


def check_metadata(modality: str | None) -> Refusal | None:
    """Layer 1: the DICOM Modality (None = not DICOM or no Modality: nothing to say)."""
    reason = metadata.check(modality)
    return Refusal("metadata", reason) if reason else None


def check_scan(scan: Scan) -> Refusal | None:
    """Layers 1 and 2 on a decoded scan: its DICOM Modality, then - when its pixels decoded - the pixel rules."""
    refusal = check_metadata(scan.modality)
    if refusal is None and scan.pixels is not None:
        refusal = check_pixels(scan.pixels, scan.non_finite_share)
    return refusal


RULES_SIDE = 1024  # the pixel rules are image statistics: a large image is measured at this longest side


def check_pixels(image: np.ndarray, non_finite_share: float = 0.0) -> Refusal | None:
    """Layer 2: the first pixel rule that refuses the decoded image, if any. Images larger than RULES_SIDE are
    shrunk first (area averaging), so a 50 MP upload does not cost the rules' float copies at full size."""
    side = max(image.shape[:2])
    if side > RULES_SIDE:
        scale = RULES_SIDE / side
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    for name, rule in RULES.items():
        reason = rule(image, non_finite_share)
        if reason:
            return Refusal(f"image:{name}", reason)
    return None
