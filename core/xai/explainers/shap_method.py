"""SHAP via the `shap` library: signed per-pixel contributions, summed over colour channels.

The specification names DeepExplainer; `explainer="auto"` uses it whenever the model allows.
With TF 2.21 / Keras 3 it fails on EfficientNet because shap's TF DeepExplainer has no rule for
depthwise convolutions ("gradient registry has no entry for: shap_DepthwiseConv2dNative"), so
`auto` then uses GradientExplainer (expected gradients, the SHAP approximation for
differentiable models) and says why in the explanation note.

nsamples = 100 in batches of 50 (shap's batch size; its default is 200 samples): with a given number of
samples the map for the explained class is shap's own to the last bit (the same seeded draws); the speed-up
comes from explaining only that class and from half the samples. The summed per-pixel values are speckle
(neighbouring pixels of a lesion get values of both signs), so the map is smoothed with a Gaussian of sigma
8 px at 224 px (option `smooth_sigma`, 0 = raw values). Both were chosen on Training masks of the model's
validation split; the measurements and the command are in docs/explanations.md, "How the explainers'
defaults were chosen".
The per-class gradients shap would trace one by one (seconds each) share one traced function here
(`class_gradients`); tests check the values against shap's own for every class.
"""
from __future__ import annotations

import importlib
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.model.inference import weak_call as _weak_call
from core.xai.explainers.background import fallback_background
from core.xai.options import int_at_least, one_of

SHAP_EXPLAINERS = ("auto", "deep", "gradient")  # shap's explainer classes this method can use


@dataclass(frozen=True)
class Options:
    """explainer: auto, deep or gradient; nsamples / batch_size: GradientExplainer's samples and batches;
    background: reference images (N, S, S, 3), None for blurred copies of the input; seed: shap's rseed;
    smooth_sigma: Gaussian smoothing of the summed map in pixels at 224 px (0 = the raw per-pixel values)."""

    explainer: str = "auto"
    nsamples: int = 100
    background: Any = None
    seed: int = 0
    batch_size: int = 50
    smooth_sigma: float = 8.0

    def __post_init__(self) -> None:
        one_of("explainer", self.explainer, SHAP_EXPLAINERS)
        if isinstance(self.smooth_sigma, bool) or not isinstance(self.smooth_sigma, (int, float)) \
                or not 0 <= self.smooth_sigma <= 50:
            raise ExplainError(f"option smooth_sigma must be a number in [0, 50], got {self.smooth_sigma!r}")
        int_at_least("nsamples", self.nsamples)
        int_at_least("seed", self.seed, 0)
        int_at_least("batch_size", self.batch_size)
DEEP_UNSUPPORTED_LAYERS = {
    "DepthwiseConv2D": "shap's DeepExplainer does not support this network's depthwise convolutions",
}

# Per model: {batch size: GradientExplainer}. Weakly keyed, and no value refers to the model strongly, so an
# evicted model is freed (tests/test_model_caches.py).
_GRADIENT: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
# shap explainers are not thread-safe (ours swap their background in; DeepExplainer patches TF's gradient
# registry while it runs) and the app explains from several threads (sessions, the warm-up): one at a time.
_LOCK = threading.Lock()
# shap calls the model with a list of inputs; Keras warns that the structure differs from its named input.
warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match the expected structure",
                        category=UserWarning)


def deep_unsupported_reason(model: Any) -> str:
    """Why DeepExplainer cannot run on this model ('' when it can).

    Checked statically: a failed DeepExplainer run leaves TF's traced functions unusable for
    GradientExplainer in the same process, so it must not be attempted on such models.
    """
    for layer in model.layers:
        reason = DEEP_UNSUPPORTED_LAYERS.get(type(layer).__name__)
        if reason:
            return f"layer {layer.name} ({type(layer).__name__}): {reason}"
    return ""


def _background(image: np.ndarray, background: Any) -> tuple[np.ndarray, str]:
    if background is None:
        return fallback_background(image), "background: blurred copies of the input (no cached background)"
    background = np.asarray(background, np.float32)
    if background.ndim != 4 or background.shape[1:] != image.shape:
        raise ExplainError(f"background must have shape (N, {', '.join(map(str, image.shape))}), "
                           f"got {background.shape}")
    return background, f"background: {len(background)} training images"


def _import_shap() -> Any:
    """`shap`, imported on a helper thread the first time.

    On import shap records the ImportErrors of its optional parts (GPU extension, pyspark) with their
    tracebacks; a traceback keeps every calling frame alive, and the callers here hold the model, which
    then could never be freed. A fresh thread's stack holds nothing."""
    if "shap" not in sys.modules:
        loader = threading.Thread(target=importlib.import_module, args=("shap",), name="import-shap")
        loader.start()
        loader.join()
    import shap  # raises here, in the caller, if the import failed

    return shap


def _deep(model: Any, image: np.ndarray, class_index: int, background: np.ndarray) -> np.ndarray:
    shap = _import_shap()
    explainer = shap.DeepExplainer(model, background)
    values = explainer.shap_values(image[None], check_additivity=False)
    return np.asarray(values)[0, ..., class_index]


def class_gradients(model: Any, num_classes: int) -> list[Callable]:
    """Per-class gradient functions in the form shap's TF GradientExplainer calls them (a list of
    inputs in, a list of gradients out), all backed by ONE traced function that takes the class as a
    tensor. shap traces a new function per class (seconds each on EfficientNet); the gradient is the
    same one, d model(x)[:, class] / dx."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    call = _weak_call(model)  # these functions are cached per model: they must not keep it alive

    @tf.function(input_signature=[spec, tf.TensorSpec((), tf.int32)])
    def gradient(x: Any, index: Any) -> Any:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            score = tf.gather(call(x), index, axis=1)
        return tape.gradient(score, x)

    return [lambda inputs, i=i: [gradient(inputs[0], tf.constant(i, tf.int32))] for i in range(num_classes)]


def _gradient(model: Any, image: np.ndarray, class_index: int, background: np.ndarray,
              nsamples: int, seed: int, batch_size: int) -> np.ndarray:
    """Expected gradients for one class. One explainer per model and batch size is kept and its
    background swapped in (`explainer.explainer.data`), because every new GradientExplainer traces
    the model's gradient again (seconds on EfficientNet); its per-class gradients share one trace."""
    shap = _import_shap()

    per_model = _GRADIENT.setdefault(model, {})
    explainer = per_model.get(batch_size)
    if explainer is None:
        explainer = shap.GradientExplainer(model, background, batch_size=batch_size)
        explainer.explainer.gradients = class_gradients(model, len(explainer.explainer.gradients))
        # shap keeps the model to score inputs; a weak caller instead, or the cache would keep it alive
        explainer.explainer.model = _weak_call(model)
        per_model[batch_size] = explainer
    explainer.explainer.data = [background]
    state = np.random.get_state()
    try:
        values, _ = explainer.shap_values(image[None], nsamples=nsamples, ranked_outputs=np.array([[class_index]]),
                                          output_rank_order="custom", rseed=seed)
    finally:
        np.random.set_state(state)  # shap seeds NumPy's global generator; leave it as it was
    return np.asarray(values)[0, ..., 0]


def smooth(values: np.ndarray, sigma_224: float) -> np.ndarray:
    """Gaussian smoothing with sigma given at 224 px, scaled to the map's size (sums of signed values stay signed)."""
    if sigma_224 <= 0:
        return values
    import cv2

    return cv2.GaussianBlur(np.asarray(values, np.float32), (0, 0), sigma_224 * values.shape[0] / 224.0)


def run(model: Any, image: np.ndarray, class_index: int, options: Options) -> tuple[np.ndarray, str, dict]:
    """The signed SHAP map of `class_index` (per-pixel contributions summed over colour channels, smoothed by
    `smooth_sigma`), a note naming the shap explainer and the background, and which explainer ran."""
    heat, note, extras = _run(model, image, class_index, options)
    if options.smooth_sigma > 0:
        heat = smooth(heat, float(options.smooth_sigma))
        note += f"; smoothed (sigma {options.smooth_sigma:g} px at 224 px)"
    return heat.astype(np.float32), note, extras


def _run(model: Any, image: np.ndarray, class_index: int, options: Options) -> tuple[np.ndarray, str, dict]:
    kind, nsamples, batch_size = options.explainer, options.nsamples, options.batch_size
    background, background_note = _background(image, options.background)
    reason = deep_unsupported_reason(model) if kind != "gradient" else ""
    if kind == "deep" and reason:
        raise ExplainError(f"shap.DeepExplainer cannot explain this model: {reason}; use explainer='gradient'")
    if kind in ("auto", "deep") and not reason:
        with _LOCK:
            values = _deep(model, image, class_index, background)
        return values.sum(axis=-1).astype(np.float32), f"shap.DeepExplainer; {background_note}", {"explainer": "deep"}
    with _LOCK:
        values = _gradient(model, image, class_index, background, nsamples, options.seed, batch_size)
    why = f" because DeepExplainer cannot run on this model: {reason}" if reason else ""
    note = f"shap.GradientExplainer (expected gradients, {nsamples} samples){why}; {background_note}"
    return values.sum(axis=-1).astype(np.float32), note, {"explainer": "gradient"}
