"""Training augmentation in NumPy/OpenCV: runs the same on every Keras backend (TensorFlow or JAX).

Each image's draws come from its own generator seeded by (run seed, epoch, image index), so the same seed
gives the same augmented batches on any machine and with any number of loader threads, and no two images
(or two transforms of one image) share a draw.

- "spec": the specification's geometric augmentation, composed into one affine warp (rotation +-15 deg,
  horizontal flip, zoom +-10%, shifts +-10%, border replicated).
- "robust" (the default recipe): "spec" plus what differs between the collections this dataset was built
  from and other hospitals' scans: zoom-out with black padding (framing), gamma, contrast and brightness,
  a smooth multiplicative bias field, blur, noise and JPEG re-encoding (acquisition and export).
- "none": no augmentation.
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

cv2.setNumThreads(1)  # per-image work is tiny: OpenCV's thread pool only fights the training threads
AUGMENTATIONS = ("robust", "spec", "none")
ROTATION_DEG = 15.0
ZOOM = 0.10
SHIFT = 0.10


def image_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one image in one epoch (stateless: a pure function of the three numbers)."""
    return np.random.default_rng([seed, epoch, index])


def affine(image: np.ndarray, rng: np.random.Generator, zoom_out: float = 1.0) -> np.ndarray:
    """Rotation, flip, zoom, shift in one warp; `zoom_out` > 1 shrinks the scan inside black padding."""
    h, w = image.shape[:2]
    angle = rng.uniform(-ROTATION_DEG, ROTATION_DEG)
    scale = rng.uniform(1.0 - ZOOM, 1.0 + ZOOM) / zoom_out
    flip = rng.random() < 0.5
    tx, ty = rng.uniform(-SHIFT, SHIFT, 2) * (w, h)
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, scale)
    matrix[:, 2] += (tx, ty)
    if flip:
        image = image[:, ::-1]
    border = cv2.BORDER_CONSTANT if zoom_out > 1.0 else cv2.BORDER_REPLICATE
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border,
                          borderValue=(0, 0, 0))


def bias_field(shape: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth multiplicative field in [1 - strength, 1 + strength] (MRI coil inhomogeneity)."""
    coarse = rng.uniform(-1.0, 1.0, (3, 3)).astype(np.float32)
    field = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return 1.0 + strength * np.clip(field, -1.0, 1.0)


def intensity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma, contrast/brightness (one lookup table), bias field, blur, noise and JPEG re-encoding."""
    gamma = math.exp(rng.uniform(-0.4, 0.4))
    gain, offset = rng.uniform(0.75, 1.25), rng.uniform(-0.08, 0.08)
    table = np.clip(((np.arange(256) / 255.0) ** gamma * gain + offset) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out = cv2.LUT(image, table)
    if rng.random() < 0.4:
        field = bias_field(out.shape[:2], rng, rng.uniform(0.05, 0.25))
        out = np.clip(out * field[..., None] + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.3:
        noise = rng.normal(0.0, rng.uniform(1.0, 8.0), out.shape[:2]).astype(np.float32)[..., None]
        out = np.clip(out + noise + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        out = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).reshape(out.shape) if ok else out
    return out


def augment(image: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """One augmented copy (uint8, same shape) of a preprocessed uint8 scan.

    A fourth channel (a lesion mask) moves with the scan's geometry but gets no intensity change; the
    scan's channels come out exactly as without it (the same draws in the same order).
    """
    if kind == "none":
        return image
    if kind == "spec":
        return affine(image, rng)
    zoom_out = rng.uniform(1.0, 1.35) if rng.random() < 0.3 else 1.0
    out = affine(image, rng, zoom_out)
    if out.shape[2] == 4:
        return np.concatenate([intensity(np.ascontiguousarray(out[..., :3]), rng), out[..., 3:]], axis=2)
    return intensity(out, rng)


def augmented_batch(images: np.ndarray, indices: np.ndarray, kind: str, seed: int, epoch: int,
                    masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(float32 batch of the images at `indices`, each augmented with its own (seed, epoch, index) draws,
    uint8 masks warped with them or None)."""
    if masks is None:
        out = [augment(images[i], image_rng(seed, epoch, int(i)), kind) for i in indices]
        return np.stack(out).astype(np.float32), None
    out = [augment(np.concatenate([images[i], masks[i][..., None]], axis=2), image_rng(seed, epoch, int(i)), kind)
           for i in indices]
    stacked = np.stack(out)
    return stacked[..., :3].astype(np.float32), stacked[..., 3]


def batch_dataset(images: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, kind: str,
                  seed: int, shuffle: bool, lesion: tuple[np.ndarray, np.ndarray] | None = None,
                  grid: int = 0, no_tumour: int = -1) -> Any:
    """A keras.utils.PyDataset of (float32 images 0-255, target rows): the training and validation feed.

    Target rows are one-hot, or every tumour class for a partial label (`core.training.partial.targets`;
    `no_tumour` is the no-tumour class index).

    Shuffling and augmentation depend only on (seed, epoch, index). Works on any Keras backend.
    With `grid` > 0 (a training model with the lesion head, `core.training.lesion`), inputs are
    {"image", "lesion_target"}: the augmented `lesion` masks (masks, known) on the grid, IGNORE without them.
    """
    import keras

    from core.training.lesion import IGNORE, TARGET_INPUT, grid_targets
    from core.training.partial import targets

    class ScanBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=2)  # augment the next batch in a thread while the model trains on this one
            self.epoch = 0
            self.order = self._order()

        def _order(self) -> np.ndarray:
            if not shuffle:
                return np.arange(len(images))
            return np.random.default_rng([seed, self.epoch]).permutation(len(images))

        def __len__(self) -> int:
            return int(math.ceil(len(images) / batch_size))

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            chosen = self.order[index * batch_size:(index + 1) * batch_size]
            x, masks = augmented_batch(images, chosen, kind, seed, self.epoch, lesion[0] if lesion else None)
            y = targets(labels[chosen], num_classes, no_tumour)
            if not grid:
                return x, y
            if masks is None:
                target = np.full((len(chosen), grid, grid), IGNORE, np.float32)
            else:
                target = grid_targets(masks, lesion[1][chosen], grid)
            return {"image": x, TARGET_INPUT: target}, y

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

        def set_epoch(self, epoch: int) -> None:
            """Start at `epoch` (a resumed run draws what the uninterrupted run would have drawn)."""
            self.epoch = epoch
            self.order = self._order()

    return ScanBatches()
