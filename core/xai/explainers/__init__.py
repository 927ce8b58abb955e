"""Explainers behind one interface: `explain(model, image, method)` -> Explanation.

Adding a method = one module with a frozen `Options` dataclass and `run(model, image, class_index, options)`
plus one entry in EXPLAINERS, which also says how its map is drawn and whether it takes background scans.
Heavy libraries (shap, lime, skimage) are imported inside `run`.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.model.inference import check_image
from core.xai.explainers import lime_method, scorecam, shap_method
from core.xai.explainers.background import load_background
from core.xai.explainers.base import ExplainerSpec, Explanation, resolve_class
from core.xai.options import as_dict

EXPLAINERS: dict[str, ExplainerSpec] = {
    "scorecam": ExplainerSpec(
        "scorecam", "Score-CAM", False,
        "Activation-based: each feature-map channel masks the scan and is weighted by how much it "
        "raises the class score. No gradients. Heatmap in [0, 1].",
        scorecam.Options, scorecam.run, {"max_channels": scorecam.Options().batch_size}),
    "shap": ExplainerSpec(
        "shap", "SHAP", True,
        "Signed pixel contributions (Shapley-value approximation) against background scans: red "
        "supports the class, blue contradicts it.",
        shap_method.Options, shap_method.run, {"nsamples": shap_method.Options().batch_size},
        overlay="signed", background_option="background"),
    "lime": ExplainerSpec(
        "lime", "LIME", False,
        "Local surrogate: superpixels are hidden at random and a linear model learns which regions "
        "drive the class score. Region weights in [0, 1].",
        lime_method.Options, lime_method.run, {"num_samples": lime_method.Options().batch_size},
        overlay="regions"),
}


def get_spec(method: str) -> ExplainerSpec:
    """The registry entry of a method name, or ExplainError listing the valid names."""
    spec = EXPLAINERS.get(method)
    if spec is None:
        raise ExplainError(f"unknown explanation method {method!r}; choose one of {', '.join(EXPLAINERS)}")
    return spec


def needs_background(methods: Iterable[str]) -> bool:
    """Does any of the methods take background scans from the training data?"""
    return any(get_spec(m).background_option for m in methods)


def with_background(methods: Iterable[str], background: np.ndarray | None,
                    options: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per method its options (copied from `options`), with `background` added where the method takes one and
    no background was given."""
    out = {m: dict((options or {}).get(m, {})) for m in methods}
    for method, values in out.items():
        option = get_spec(method).background_option
        if option and background is not None:
            values.setdefault(option, background)
    return out


def folder_options(method: str, model_dir: str | Path | None, image_size: int) -> dict[str, Any]:
    """Options a method takes from the model folder: its cached background scans, when it takes some and the
    folder has them. The CLI, the evaluation, the batch worker and the app call this, so that a scan is
    explained the same way everywhere."""
    option = get_spec(method).background_option
    background = load_background(model_dir, image_size) if option else None
    return {} if background is None else {option: background}


def explain(model: Any, image: np.ndarray, method: str, class_index: int | None = None,
            card: Any = None, **options: Any) -> Explanation:
    """Explain the model's score for `class_index` (default: the predicted class) on one image.

    `image` is a preprocessed float32 (S, S, 3) array in 0-255 and is never modified. `card` is
    accepted for callers that have one; its image size must match the model.
    """
    spec = get_spec(method)
    image = check_image(model, image)
    if card is not None and card.image_size != image.shape[0]:
        raise ExplainError(f"model card image_size {card.image_size} does not match the image {image.shape}")
    typed = spec.options(options)
    target = resolve_class(model, image, class_index)
    start = time.perf_counter()
    heat, note, extras = spec.run(model, image, target, typed)
    seconds = time.perf_counter() - start
    return Explanation(method, np.asarray(heat, np.float32), target, spec.recorded(as_dict(typed)), seconds,
                       spec.signed, note, extras)


def warm_up(model: Any, methods: list[str] | None = None) -> dict[str, float]:
    """Run each method once on a synthetic scan with its cheap `warm_up_options`; returns seconds per method.

    The first explanation in a process otherwise pays for tracing TensorFlow functions (the feature
    extractor, batched scoring, SHAP's gradient): about 3 s for Score-CAM and 5 s for SHAP on this CPU.
    The warm-up options keep the batch shapes of the defaults, so the same traces serve real scans.
    """
    size = int(model.input_shape[1])
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    scan = np.clip(255 * np.exp(-(xx ** 2 + yy ** 2) / 0.08), 0, 255)
    image = np.repeat(scan[..., None], 3, axis=-1).astype(np.float32)
    seconds = {}
    for method in methods or list(EXPLAINERS):
        spec = get_spec(method)
        start = time.perf_counter()
        explain(model, image, method, 0, **spec.warm_up_options)
        seconds[method] = time.perf_counter() - start
    return seconds


__all__ = ["EXPLAINERS", "Explanation", "ExplainerSpec", "explain", "folder_options", "get_spec", "needs_background",
           "warm_up", "with_background"]
