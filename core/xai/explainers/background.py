"""SHAP background images: a small stratified set of training scans, cached next to the model card.

The app has no data at inference, so the background is built once (`python -m core xai-eval`
or `build_background`) and stored as `shap_background.npz` in the model folder. Without it the
fallback is made from the input itself: Gaussian-blurred copies at several strengths plus an
all-black image, i.e. "what the model sees when the detail is gone".
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

from core.errors import ExplainError
from core.io.atomic import atomic_write_with

BACKGROUND_FILE = "shap_background.npz"
PER_CLASS = 4
FALLBACK_SIGMAS = (2.0, 4.0, 8.0, 16.0)


def build_background(data_root: str | Path, image_size: int, per_class: int = PER_CLASS, seed: int = 0,
                     crop: str = "none") -> np.ndarray:
    """`per_class` training scans of every class (seeded choice), preprocessed, uint8 (N, S, S, 3)."""
    from core.data.discovery import discover, load_samples

    index = discover(data_root)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(index.class_names)):
        samples = [s for s in index.splits["Training"] if s.label == label]
        picks = rng.choice(len(samples), size=min(per_class, len(samples)), replace=False)
        chosen.extend(samples[i] for i in sorted(picks))
    return load_samples(chosen, image_size, crop=crop).images


def save_background(model_dir: str | Path, images: np.ndarray) -> Path:
    """Cache the background atomically (an explanation may load it at any moment)."""
    images = np.asarray(images, np.uint8)
    return atomic_write_with(Path(model_dir) / BACKGROUND_FILE,
                             lambda handle: np.savez_compressed(handle, images=images))


def load_background(model_dir: str | Path | None, image_size: int) -> np.ndarray | None:
    """The cached background of a model folder (float32), or None when there is none."""
    if model_dir is None:
        return None
    path = Path(model_dir) / BACKGROUND_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = np.asarray(archive["images"]).astype(np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ExplainError(f"{path} is unreadable ({type(exc).__name__}: {exc}); delete it to rebuild "
                           "(python -m core xai-eval)") from exc
    if images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3):
        raise ExplainError(f"{path} holds images of shape {images.shape}, the model needs (N, {image_size}, "
                           f"{image_size}, 3); delete it to rebuild")
    return images


def ensure_background(model_dir: str | Path, data_root: str | Path, image_size: int, seed: int = 0,
                      crop: str = "none") -> np.ndarray:
    """Load the cached background or build it from the data and cache it."""
    cached = load_background(model_dir, image_size)
    if cached is not None:
        return cached
    images = build_background(data_root, image_size, seed=seed, crop=crop)
    save_background(model_dir, images)
    return images.astype(np.float32)


def fallback_background(image: np.ndarray) -> np.ndarray:
    """Blurred copies of the input (sigma 2-16 px) and a black image: needs no data."""
    blurred = [cv2.GaussianBlur(image, (0, 0), sigma) for sigma in FALLBACK_SIGMAS]
    return np.stack(blurred + [np.zeros_like(image)]).astype(np.float32)
