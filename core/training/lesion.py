"""Auxiliary lesion supervision: the Training masks reward the network for looking at the tumour.

During training only, a 1x1 convolution reads the classifier's last feature map (the map that global pooling
turns into class evidence, and that CAM-style explanations are made of) and predicts, per cell, how much of the
cell is tumour; a binary cross-entropy against the expert mask, area-averaged onto the same grid, is added to
the classification loss with weight `mask_weight`. No-tumour scans teach "no lesion anywhere" (an all-zero
target); tumour scans without a mask are ignored (target -1), and so is every validation scan, so `val_loss`
stays the classification loss. The exported model is the plain classifier (`copy_classifier_weights`): the
head is dropped, so inference, explainers and model cards do not change.

Only Training masks are ever read here (the split's own scans); Testing masks stay for evaluation.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.data.masks import load_mask_index
from core.io.images import crop_to_head, read_image

IGNORE = -1.0
TARGET_INPUT = "lesion_target"
LOSS_LAYER = "lesion_loss"


def lesion_masks(samples: list[Any], image_size: int, crop: str, masks_dir: str | Path,
                 normal_label: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 masks (N, S, S) in the geometry of the preprocessed scans, bool `known` (N,)) for `samples`.

    A mask gets the scan's own head crop (the box is found on the scan, not the mask) and the same resize.
    No-tumour scans are known and empty; tumour scans without a Training mask are unknown.
    """
    index = load_mask_index(masks_dir)
    masks = np.zeros((len(samples), image_size, image_size), np.uint8)
    known = np.zeros(len(samples), bool)
    for i, sample in enumerate(samples):
        if sample.label == normal_label:
            known[i] = True
            continue
        row = index.for_file(sample.relpath)
        if row is None or row.split != "Training":
            continue
        mask = cv2.imread(str(index.root / row.mask), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            continue
        if crop == "head":
            scan = read_image(sample.path)
            if mask.shape != scan.shape[:2]:
                mask = cv2.resize(mask, scan.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            mask = crop_to_head(mask, reference=scan)
        masks[i] = cv2.resize(mask, (image_size, image_size), interpolation=cv2.INTER_AREA)
        known[i] = True
    return masks, known


def grid_targets(masks: np.ndarray, known: np.ndarray, grid: int) -> np.ndarray:
    """float32 (N, grid, grid): the share of each cell covered by tumour, or IGNORE for unknown scans."""
    out = np.stack([cv2.resize(m.astype(np.float32) / 255.0, (grid, grid), interpolation=cv2.INTER_AREA)
                    for m in masks]) if len(masks) else np.zeros((0, grid, grid), np.float32)
    out[~known] = IGNORE
    return out.astype(np.float32)


def _loss_layer_class() -> Any:
    import keras
    from keras import layers, ops

    @keras.saving.register_keras_serializable("brainscan")
    class LesionLoss(layers.Layer):
        """Passes the class probabilities through and adds the weighted lesion loss of its feature map."""

        def __init__(self, mask_weight: float, **kwargs: Any):
            super().__init__(**kwargs)
            self.mask_weight = float(mask_weight)
            self.head = layers.Conv2D(1, 1, name="lesion_head")

        def build(self, input_shape: Any) -> None:
            self.head.build(input_shape[1])

        def call(self, inputs: Any) -> Any:
            predictions, features, target = inputs
            logits = ops.squeeze(ops.cast(self.head(features), "float32"), -1)
            known = ops.cast(target >= 0.0, "float32")
            truth = ops.maximum(target, 0.0)
            bce = ops.maximum(logits, 0.0) - logits * truth + ops.log1p(ops.exp(-ops.abs(logits)))
            self.add_loss(self.mask_weight * ops.sum(bce * known) / ops.maximum(ops.sum(known), 1.0))
            return predictions

        def compute_output_spec(self, inputs: Any) -> Any:
            return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "mask_weight": self.mask_weight}

    return LesionLoss


@functools.cache
def register() -> Any:
    """The LesionLoss layer class, registered with Keras (needed before loading a training checkpoint)."""
    return _loss_layer_class()


def with_lesion_head(classifier: Any, mask_weight: float) -> Any:
    """The training model: inputs {"image", "lesion_target"}, output the classifier's probabilities, plus the
    lesion loss on its feature map. Shares every layer with `classifier`."""
    import keras

    from core.model.factory import feature_layer_name

    features = classifier.get_layer(feature_layer_name(classifier)).output
    target = keras.Input(tuple(features.shape[1:3]), name=TARGET_INPUT)
    output = register()(mask_weight, name=LOSS_LAYER)([classifier.output, features, target])
    return keras.Model({"image": classifier.input, TARGET_INPUT: target}, output, name=f"{classifier.name}_lesion")


def feature_grid(model: Any) -> int:
    """The side of a classifier's last feature map: the lesion target grid (4 for EfficientNetB0 at 128 px)."""
    from core.model.factory import feature_layer_name

    return int(model.get_layer(feature_layer_name(model)).output.shape[1])


def copy_classifier_weights(source: Any, classifier: Any) -> None:
    """Copy every weight of `classifier` from `source`, a training model of the same architecture with or
    without the lesion head. Layers are matched by position (Keras numbers unnamed layers per process, so
    names differ between two builds), the head's two layers skipped; a mismatch raises."""
    layers = [layer for layer in source.layers if layer.name not in (TARGET_INPUT, LOSS_LAYER)]
    if len(layers) != len(classifier.layers):
        raise ValueError(f"{source.name} has {len(layers)} classifier layers, {classifier.name} "
                         f"{len(classifier.layers)}: not the same architecture")
    for origin, target in zip(layers, classifier.layers):
        if type(origin) is not type(target):
            raise ValueError(f"layer {origin.name} ({type(origin).__name__}) does not match {target.name} "
                             f"({type(target).__name__})")
        if target.weights:
            target.set_weights(origin.get_weights())
