"""Score-CAM (Wang et al. 2020): gradient-free, class-weighted feature maps.

Target layer: the model's last 4-D feature map (`core.model.factory.feature_layer_name`), never a name.
Each channel is upsampled to the input size, min-max normalised and used as a soft mask on the
input; the masked images are scored in large batches. Channel weights (option `weighting`):
"cic" (default) = the paper's Increase of Confidence, target-class probability of the masked
image minus that of the all-zero image; "score" = the probability alone, as in the authors' code;
"softmax" = the paper's softmax over channels of those scores (the baseline cancels), which is
what tf-keras-vis computes in effect. If the CIC map is empty after the ReLU (the model rates a
black image higher than the masked ones) "cic" falls back to "score" and says so in the note.
Defaults: 128 channels with "cic" weighting (as good as every channel at a twentieth of the time).
Layer (option `resolution`, default 4): the 128-px B0's last feature map is 4x4, too coarse to point at a
0.7%-area pituitary tumour, so the default explains the last layer whose map is at least 4x as wide (found
from the graph: 16x16 `block4a_expand_activation` on the bundled model; any backbone works). Why these
defaults, with the measurements and the commands that made them: docs/explanations.md, "How the
explainers' defaults were chosen".
CAM = ReLU(sum_k w_k A_k) at feature resolution, upsampled bilinearly
and scaled to [0, 1]. `max_channels` > 0 keeps only the channels of highest spatial standard
deviation (Faster Score-CAM, as in tf-keras-vis `max_N`); 0 uses every channel.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.model.inference import forward, predict_proba
from core.xai.explainers.base import normalise01
from core.xai.options import int_at_least, one_of

WEIGHTINGS = ("score", "cic", "softmax")
FUSIONS = ("none", "mean", "product")
SKIPPED_LAYER_TYPES = ("ZeroPadding2D", "Cropping2D", "InputLayer", "Rescaling", "Normalization")


@dataclass(frozen=True)
class Options:
    """max_channels: channels of highest variance kept per layer (0 = all); weighting: cic, score or softmax;
    resolution: 1 = the last feature map, k = the last layer whose map is at least k times as wide;
    fusion: none, or mean / product (geometric mean) of that CAM with the last feature map's CAM;
    batch_size: masked images scored per forward call."""

    max_channels: int = 128
    weighting: str = "cic"
    resolution: int = 4
    fusion: str = "none"
    batch_size: int = 64

    def __post_init__(self) -> None:
        int_at_least("max_channels", self.max_channels, 0)
        one_of("weighting", self.weighting, WEIGHTINGS)
        int_at_least("resolution", self.resolution, 1)
        one_of("fusion", self.fusion, FUSIONS)
        int_at_least("batch_size", self.batch_size)

_FEATURE_MODELS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def target_layers(model: Any, resolution: int, fusion: str) -> list[str]:
    """Layer names to explain: the last feature map, or the last 4-D layer whose map is `resolution` times as
    wide (found from the graph, so any backbone works), plus the last map when fusing."""
    from core.model.factory import feature_layer_name

    last = feature_layer_name(model)
    if resolution == 1:
        return [last]
    width = int(model.get_layer(last).output.shape[1])
    chosen = None
    for layer in model.layers:
        shape = getattr(getattr(layer, "output", None), "shape", None)
        if shape is None or len(shape) != 4 or type(layer).__name__ in SKIPPED_LAYER_TYPES \
                or layer.name.startswith("image") or shape[1] is None:
            continue
        if int(shape[1]) >= resolution * width and int(shape[1]) < int(model.input_shape[1]):
            chosen = layer.name
    if chosen is None:
        return [last]
    return [chosen, last] if fusion != "none" else [chosen]


def feature_model(model: Any, layer: str | None = None) -> Any:
    """A cached model returning one 4-D feature map (default: the last one)."""
    from core.model.factory import feature_layer_name

    layer = layer or feature_layer_name(model)
    per_model = _FEATURE_MODELS.setdefault(model, {})
    cached = per_model.get(layer)
    if cached is None:
        import keras

        cached = keras.Model(model.inputs, model.get_layer(layer).output)
        per_model[layer] = cached
    return cached


def select_channels(activations: np.ndarray, max_channels: int) -> np.ndarray:
    """Indices of the `max_channels` channels of highest spatial std (all channels if 0 or more)."""
    channels = activations.shape[-1]
    if max_channels <= 0 or max_channels >= channels:
        return np.arange(channels)
    std = activations.reshape(-1, channels).std(axis=0)
    return np.sort(np.argsort(-std, kind="stable")[:max_channels])


def interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear weights with half-pixel centres and clamped edges (as cv2.INTER_LINEAR)."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    matrix = np.zeros((n_out, n_in), np.float32)
    matrix[np.arange(n_out), lo] += 1 - frac
    matrix[np.arange(n_out), hi] += frac
    return matrix


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """(h, w, K) -> (size, size, K) bilinear, any number of channels, as two matrix products."""
    rows = interpolation_matrix(maps.shape[0], size)
    cols = interpolation_matrix(maps.shape[1], size)
    return np.einsum("ih,hwk,jw->ijk", rows, maps.astype(np.float32), cols, optimize=True)


def channel_masks(activations: np.ndarray, size: int) -> np.ndarray:
    """Upsampled, per-channel min-max normalised masks (K, size, size) in [0, 1]."""
    up = upsample(activations.astype(np.float32), size)
    lo = up.min(axis=(0, 1), keepdims=True)
    hi = up.max(axis=(0, 1), keepdims=True)
    masks = (up - lo) / np.maximum(hi - lo, 1e-7)
    return np.moveaxis(masks, -1, 0)


def _weights(model: Any, image: np.ndarray, class_index: int, scores: np.ndarray, weighting: str) -> np.ndarray:
    if weighting == "cic":
        return scores - predict_proba(model, np.zeros_like(image)[None])[0, class_index]
    if weighting == "softmax":
        shifted = np.exp(scores - scores.max())
        return shifted / shifted.sum()
    return scores


def run(model: Any, image: np.ndarray, class_index: int, options: Options) -> tuple[np.ndarray, str, dict]:
    """The Score-CAM map of `class_index` in [0, 1] at input resolution (several layers fused by `fusion`), a
    note naming each layer with its map size and weighting, and extras: the first layer's details and `layers`."""
    layers = tuple(target_layers(model, options.resolution, options.fusion))
    cams, notes, extras = [], [], {}
    for name in layers:
        activations = forward(feature_model(model, name), image[None]).astype(np.float32)
        cam, note, extra = _layer_cam(model, image, class_index, activations[0], options)
        cams.append(cam)
        notes.append(f"{name} {activations.shape[1]}x{activations.shape[2]}: {note}")
        extras = extras or extra
    if len(cams) == 1:
        heat = cams[0]
    elif options.fusion == "mean":
        heat = normalise01(np.mean(cams, axis=0))
    else:
        heat = normalise01(np.sqrt(np.prod(np.stack(cams), axis=0)))
    fused = f", fused by {options.fusion}" if len(cams) > 1 else ""
    return heat, "Score-CAM on " + "; ".join(notes) + fused, {**extras, "layers": list(layers)}


def _layer_cam(model: Any, image: np.ndarray, class_index: int, activations: np.ndarray,
               options: Options) -> tuple[np.ndarray, str, dict]:
    max_channels, batch_size, weighting = options.max_channels, options.batch_size, options.weighting
    size = image.shape[0]
    total = activations.shape[-1]
    keep = select_channels(activations, max_channels)
    activations = activations[:, :, keep]
    masks = channel_masks(activations, size)
    scores = np.empty(len(keep), np.float64)
    for start in range(0, len(keep), batch_size):
        masked = image[None] * masks[start:start + batch_size, :, :, None]
        scores[start:start + batch_size] = predict_proba(model, masked, batch_size)[:, class_index]
    used = weighting
    weights = _weights(model, image, class_index, scores, weighting)
    cam = np.maximum(activations @ weights.astype(np.float32), 0.0)
    if weighting == "cic" and cam.max() <= 0:
        used, weights = "score (the increase-of-confidence map was empty)", scores
        cam = np.maximum(activations @ weights.astype(np.float32), 0.0)
    cam = upsample(cam[:, :, None], size)[:, :, 0]
    note = f"{len(keep)} of {total} channels (weights: {used})"
    return normalise01(np.maximum(cam, 0.0)), note, {"channels": int(len(keep)), "weights": weights}
