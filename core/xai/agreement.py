"""Do the methods agree on this scan? Pairwise agreement of explanation maps, and maps that leave the head.

For each pair of maps: the Spearman rank correlation of the pixel values, and the overlap (IoU) of their
top `top_fraction` regions (the pixels a reader's eye goes to). Two unrelated maps' top-10% regions
overlap with an IoU of about 0.05 by chance; the pair is called in disagreement below `disagree_below`
(0.15, three times chance). The scan-level agreement score is the mean pairwise IoU. Each map's share
of positive mass outside the head (`core.xai.anatomy`) is reported, "mostly outside" above one half.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from core.xai.anatomy import head_mask, outside_share

TOP_FRACTION = 0.10
DISAGREE_BELOW = 0.15
OUTSIDE_ABOVE = 0.5


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
