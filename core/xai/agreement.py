"""Do the methods agree on this scan? Pairwise agreement of explanation maps, and maps that leave the head.

For each pair of maps: the Spearman rank correlation of the pixel values, and the overlap (IoU) of their
top `top_fraction` regions (the pixels a reader's eye goes to). Two unrelated maps' top-10% regions
overlap with an IoU of about 0.05 by chance; the pair is called in disagreement below `disagree_below`
(0.15, three times chance). The scan-level agreement score is the mean pairwise IoU. Each map's share
of positive mass outside the head (`core.xai.anatomy`) is reported, "mostly outside" above one half.

What the score may be said to mean is decided by a measurement, not by the overlap itself: `describe_agreement`
words a result, and says "the maps agree" only at a level at which, in Training scans with expert masks, agreeing
maps were on the tumour more often than the others (`benchmarks/agreement_calibration.py`; the thresholds,
the table and the rule are in docs/agreement.md). High overlap of wrong maps is still wrong.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import numpy as np

from core.xai.anatomy import head_mask, outside_share

TOP_FRACTION = 0.10
CHANCE_IOU = 0.05          # expected top-10% IoU of two unrelated maps: 0.1² / (2·0.1 − 0.1²) ≈ 0.053
DISAGREE_BELOW = 0.15      # a pair below this (3× chance) is called in disagreement
OUTSIDE_ABOVE = 0.5

# Calibration of the wording against Training expert masks (docs/agreement.md; record
# benchmarks/results/agreement_calibration.json). "Agree" is said only from AGREE_FROM on, for the methods that
# were calibrated together; None = the measurement found no such level, so the wording never says "agree".
CALIBRATION_DOC = "docs/agreement.md"
CALIBRATED_METHODS = frozenset({"scorecam", "shap", "lime"})
ON_TUMOUR = "at least two of the three maps peaked on the tumour"
# The saved calibration: 90 validation-split Training scans, the model bundled since 2026-12-01, its maps in the
# model's head-cropped frame (2026-12-02). Its rule accepts "agree" from 0.138, but on 6 scans (5 of them
# meningiomas): under MIN_QUOTED_N, so the page does not say "agree" (describe_agreement); "disagree" (84 of 90
# scans) quotes its rate. No scan fell between the levels, hence no neutral rate.
AGREE_FROM: float | None = 0.138
AGREE_ON_TUMOUR: tuple[float, int] | None = (0.833, 6)     # (rate, n) of scans called "agree" in the calibration
NEUTRAL_ON_TUMOUR: tuple[float, int] | None = None         # (rate, n): neither "agree" nor "disagree"; None: n = 0
DISAGREE_ON_TUMOUR: tuple[float, int] | None = (0.25, 84)  # (rate, n): a pair below DISAGREE_BELOW
MIN_QUOTED_N = 20          # a rate is quoted, and "agree" said, only when it rests on at least this many scans


@dataclass
class Agreement:
    """Agreement of the maps of one scan."""

    pairs: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    outside_head: dict[str, float] = field(default_factory=dict)
    score: float = float("nan")
    top_fraction: float = TOP_FRACTION

    @property
    def disagreeing(self) -> list[tuple[str, str]]:
        """Pairs whose top regions overlap below the threshold."""
        return [pair for pair, v in self.pairs.items() if v["top_iou"] < DISAGREE_BELOW]

    @property
    def mostly_outside(self) -> list[str]:
        """Maps with more than half of their positive mass outside the head."""
        return [name for name, share in self.outside_head.items() if share > OUTSIDE_ABOVE]


def top_region(saliency_map: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Bool mask of the `fraction` highest-valued pixels (ties broken in raster order)."""
    flat = np.asarray(saliency_map, np.float64).ravel()
    k = max(1, int(round(fraction * flat.size)))
    region = np.zeros(flat.size, bool)
    region[np.argsort(-flat, kind="stable")[:k]] = True
    return region.reshape(np.shape(saliency_map))


def top_iou(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Intersection over union of the two maps' top regions."""
    ra, rb = top_region(a, fraction), top_region(b, fraction)
    union = (ra | rb).sum()
    return float((ra & rb).sum() / union) if union else float("nan")


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two maps' pixel values (NaN when either map is constant)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def agreement(maps: dict[str, np.ndarray], image: np.ndarray | None = None,
              top_fraction: float = TOP_FRACTION) -> Agreement:
    """Pairwise agreement of maps of the same scan (same shape); with the scan, their mass outside the head."""
    result = Agreement(top_fraction=top_fraction)
    for a, b in combinations(maps, 2):
        result.pairs[(a, b)] = {"top_iou": top_iou(maps[a], maps[b], top_fraction),
                                "spearman": rank_correlation(maps[a], maps[b])}
    ious = [v["top_iou"] for v in result.pairs.values() if np.isfinite(v["top_iou"])]
    result.score = float(np.mean(ious)) if ious else float("nan")
    if image is not None:
        head = head_mask(image)
        result.outside_head = {name: outside_share(m, head) for name, m in maps.items()}
    return result


AgreementLevel = Literal["agree", "disagree", "neutral"]


@dataclass(frozen=True)
class AgreementWording:
    """What the page may say about an agreement result: a level (for the message's style) and the sentence."""

    level: AgreementLevel
    text: str


def _measured(rate_n: tuple[float, int] | None, which: str) -> str:
    if rate_n is None or rate_n[1] < MIN_QUOTED_N:
        return ""
    rate, n = rate_n
    return f" In Training scans with expert masks, {ON_TUMOUR} in {rate:.0%} of {which} (n = {n})."


def describe_agreement(result: Agreement, labels: Mapping[str, str] | None = None) -> AgreementWording:
    """Word an agreement result as the calibration allows (docs/agreement.md).

    "disagree": some pair's top regions overlap below DISAGREE_BELOW (a caution, whatever the calibration).
    "agree": only when the calibration found a level (AGREE_FROM) at which agreeing maps were on the tumour more
    often than the others, on at least MIN_QUOTED_N scans, the score reaches it, and the maps are the calibrated
    methods; the text quotes the measured rate. "neutral" otherwise: the number and what chance gives, and that
    agreement does not show that the maps point at the tumour. `labels` maps method names to display names
    (default: the names).
    """
    names = dict(labels or {})
    label = lambda method: names.get(method, method)
    score = result.score
    if not result.pairs or not np.isfinite(score):
        return AgreementWording("neutral", "Agreement needs at least two maps of the scan; there is nothing to "
                                           "compare.")
    share = f"{result.top_fraction:.0%}"
    if result.disagreeing:
        pairs = "; ".join(f"{label(a)} and {label(b)}" for a, b in result.disagreeing)
        return AgreementWording(
            "disagree",
            f"The methods disagree on this scan: the most relevant {share} of the image hardly overlaps for {pairs} "
            f"(overlap below {DISAGREE_BELOW:.2f}; two unrelated maps overlap about {CHANCE_IOU:.2f} by chance). "
            "Do not rely on any single map here." + _measured(DISAGREE_ON_TUMOUR, "scans whose maps disagreed"))
    methods = {m for pair in result.pairs for m in pair}
    calibrated = methods == CALIBRATED_METHODS and np.isclose(result.top_fraction, TOP_FRACTION)
    if (AGREE_FROM is not None and AGREE_ON_TUMOUR is not None and AGREE_ON_TUMOUR[1] >= MIN_QUOTED_N
            and calibrated and score >= AGREE_FROM):
        rate, n = AGREE_ON_TUMOUR
        return AgreementWording(
            "agree",
            f"The maps agree ({score:.2f}): in Training scans with expert masks, {ON_TUMOUR} in {rate:.0%} of the "
            f"scans whose maps agreed this much (overlap ≥ {AGREE_FROM:.2f}, n = {n}).")
    text = (f"Overlap of the maps' most relevant {share}: {score:.2f} (two unrelated maps overlap about "
            f"{CHANCE_IOU:.2f} by chance). Agreement between methods does not show that they point at the tumour.")
    if calibrated:
        text += _measured(NEUTRAL_ON_TUMOUR, "scans at this level")
    return AgreementWording("neutral", text)
