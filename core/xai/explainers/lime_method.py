"""LIME (Ribeiro et al. 2016) via `lime`: a local linear surrogate on superpixels.

Superpixels: SLIC on the grayscale scan (MRI slices are grey, so colour SLIC only sees noise),
compactness tuned for intensities in [0, 1]. Hidden superpixels take lime's default (their mean
intensity). The classifier is fed in large batches, not lime's default of 10. The map is the
positive part of the per-superpixel weights scaled to [0, 1]; the signed weights and the
segmentation are kept in `extras` for the region overlay.

num_samples = 200 by measurement (benchmarks/xai.py --sweep, EfficientNetB0 @128, 3 test scans,
2-core CPU): map stability across seeds (Spearman) 0.67 / 0.72 / 0.78 / 0.84 at 100 / 200 / 400 /
1000 samples while insertion AUC stays flat (0.903 / 0.899 / 0.900 / 0.906); 200 is the largest
count that keeps LIME >= 3x faster than lime's defaults (1000 samples in batches of 10).
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.model.inference import predict_proba
from core.xai.options import int_at_least


@dataclass(frozen=True)
class Options:
    """num_samples: perturbed images for the surrogate; n_segments / compactness: SLIC superpixels;
    seed: lime's random state; batch_size: images scored per forward call."""

    num_samples: int = 200
    n_segments: int = 50
    compactness: float = 0.1
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        int_at_least("num_samples", self.num_samples, 10)
        int_at_least("n_segments", self.n_segments, 2)
        int_at_least("seed", self.seed, 0)
        int_at_least("batch_size", self.batch_size)


def segment(image: np.ndarray, n_segments: int = 50, compactness: float = 0.1) -> np.ndarray:
    """SLIC superpixels of the grayscale image, labels 0..K-1 (H, W) int."""
    from skimage.segmentation import slic

    gray = np.asarray(image, np.float64).mean(axis=-1) / 255.0
    return slic(gray, n_segments=n_segments, compactness=compactness, channel_axis=None, start_label=0, sigma=1)


def run(model: Any, image: np.ndarray, class_index: int, options: Options) -> tuple[np.ndarray, str, dict]:
    from lime import lime_image

    num_samples, batch_size, seed = options.num_samples, options.batch_size, options.seed
    segments = segment(image, options.n_segments, float(options.compactness))
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    with contextlib.redirect_stderr(io.StringIO()):  # lime 0.2 always draws a tqdm bar
        result = explainer.explain_instance(
            image.astype(np.float64), lambda batch: predict_proba(model, batch, batch_size), labels=(class_index,),
            top_labels=None, num_samples=num_samples, batch_size=min(num_samples, 256),
            segmentation_fn=lambda _: segments, random_seed=seed)
    weights = np.zeros(int(segments.max()) + 1, np.float32)
    for feature, weight in result.local_exp[class_index]:
        weights[feature] = weight
    signed = weights[segments]
    positive = np.maximum(signed, 0.0)
    heat = positive / positive.max() if positive.max() > 0 else positive
    note = f"LIME: {len(weights)} SLIC superpixels, {num_samples} samples (R^2 of the surrogate {result.score:.2f})"
    return heat.astype(np.float32), note, {"segments": segments, "weights": weights, "signed_map": signed}
