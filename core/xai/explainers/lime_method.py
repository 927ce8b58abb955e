"""LIME (Ribeiro et al. 2016) via `lime`: a local linear surrogate on superpixels.

Superpixels: SLIC on the grayscale scan (MRI slices are grey, so colour SLIC only sees noise; at low
compactness its boundaries follow intensity edges, i.e. anatomy), only inside the head (`core.xai.anatomy`:
the background is one region that is perturbed but never shown). Hidden superpixels show a blurred copy of
the scan (option `hide`; lime's default is their mean intensity). The classifier is fed in large batches,
not lime's default of 10. The map is the positive part of the per-superpixel weights scaled to [0, 1];
the signed weights and the segmentation are kept in `extras` for the region overlay.

Head-only superpixels and blurred hiding (defaults) were chosen on Training masks of the model's validation
split: hiding a superpixel by its own mean barely changes a bright tumour, so lime could not see that it
matters; a blurred copy removes its texture. num_samples = 200: more samples make the map steadier across
seeds without changing its faithfulness, and 200 keeps LIME at least 3x faster than lime's defaults. The
measurements and the commands: docs/explanations.md, "How the explainers' defaults were chosen".
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.model.inference import predict_proba
from core.xai.anatomy import head_mask
from core.xai.options import int_at_least, one_of

HIDES = ("mean", "black", "blur")
HIDDEN = -1.0  # marks hidden pixels in lime's perturbed images (scans are 0-255) so they can take the blur
BLUR_SIGMA_AT_224 = 10.0


@dataclass(frozen=True)
class Options:
    """num_samples: perturbed images for the surrogate; n_segments / compactness: SLIC superpixels;
    head_only: superpixels only inside the head (the background is one region that is never shown);
    hide: what a hidden superpixel shows (its mean intensity as lime does, black, or a blurred copy);
    seed: lime's random state; batch_size: images scored per forward call."""

    num_samples: int = 200
    n_segments: int = 50
    compactness: float = 0.1
    head_only: bool = True
    hide: str = "blur"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        int_at_least("num_samples", self.num_samples, 10)
        int_at_least("n_segments", self.n_segments, 2)
        one_of("hide", self.hide, HIDES)
        int_at_least("seed", self.seed, 0)
        int_at_least("batch_size", self.batch_size)


def segment(image: np.ndarray, n_segments: int = 50, compactness: float = 0.1, head_only: bool = False) -> np.ndarray:
    """SLIC superpixels of the grayscale image (H, W) int. With `head_only`, label 0 is the whole background
    and the superpixels 1..K tile the head only, so no region mixes anatomy with the empty background."""
    from skimage.segmentation import slic

    gray = np.asarray(image, np.float64).mean(axis=-1) / 255.0
    if not head_only:
        return slic(gray, n_segments=n_segments, compactness=compactness, channel_axis=None, start_label=0, sigma=1)
    head = head_mask(image)
    labels = slic(gray, n_segments=n_segments, compactness=compactness, channel_axis=None, start_label=1, sigma=1,
                  mask=head)
    return np.where(head, labels, 0)


def _hidden_fill(image: np.ndarray, hide: str) -> tuple[float | None, np.ndarray | None]:
    """(lime's hide_color, image to put where the sentinel appears)."""
    if hide == "mean":
        return None, None
    if hide == "black":
        return 0.0, None
    import cv2

    sigma = BLUR_SIGMA_AT_224 * image.shape[0] / 224.0
    return HIDDEN, cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), sigma)


def _no_progress_bar(iterable: Iterable, *args: Any, **kwargs: Any) -> Iterable:
    """Stands in for `tqdm` inside `lime.lime_image` only (lime 0.2 has no switch for its progress bar).

    Replacing lime's module-level name is thread-safe and touches nothing else; redirecting sys.stderr
    instead is process-wide, and two overlapping LIME runs then left it pointing at a dead buffer."""
    return iterable


def run(model: Any, image: np.ndarray, class_index: int, options: Options) -> tuple[np.ndarray, str, dict]:
    """The LIME map of `class_index`: the positive superpixel weights of the surrogate scaled to [0, 1], a note
    (regions, hiding, samples, the surrogate's R^2), and the signed weights and segments for the region overlay."""
    from lime import lime_image

    lime_image.tqdm = _no_progress_bar  # lime 0.2 always draws a tqdm bar on stderr; see _no_progress_bar
    num_samples, batch_size, seed = options.num_samples, options.batch_size, options.seed
    segments = segment(image, options.n_segments, float(options.compactness), options.head_only)
    hide_color, fill = _hidden_fill(image, options.hide)

    def classify(batch: np.ndarray) -> np.ndarray:
        if fill is not None:
            batch = np.where(batch == HIDDEN, fill[None], batch)
        return predict_proba(model, batch, batch_size)

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    result = explainer.explain_instance(
        image.astype(np.float64), classify, labels=(class_index,), hide_color=hide_color,
        top_labels=None, num_samples=num_samples, batch_size=min(num_samples, 256),
        segmentation_fn=lambda _: segments, random_seed=seed)
    weights = np.zeros(int(segments.max()) + 1, np.float32)
    for feature, weight in result.local_exp[class_index]:
        weights[feature] = weight
    if options.head_only:
        weights[0] = 0.0  # the background region is perturbed like any other but never shown
    signed = weights[segments]
    positive = np.maximum(signed, 0.0)
    heat = positive / positive.max() if positive.max() > 0 else positive
    where = "superpixels in the head" if options.head_only else "SLIC superpixels"
    note = (f"LIME: {len(weights) - int(options.head_only)} {where}, hidden = {options.hide}, {num_samples} samples "
            f"(R^2 of the surrogate {result.score:.2f})")
    return heat.astype(np.float32), note, {"segments": segments, "weights": weights, "signed_map": signed}
