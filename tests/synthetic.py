"""Tiny synthetic scans for fast tests: each class is a bright blob in its own quadrant."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
QUADRANTS = {"glioma": (0, 0), "meningioma": (0, 1), "notumor": None, "pituitary": (1, 1)}


def synthetic_scan(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A grayscale 'scan' (RGB uint8): noisy disc of brain, plus a bright blob for tumour classes."""
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    brain = ((yy - c) ** 2 + (xx - c) ** 2) < (0.45 * size) ** 2
    image = np.where(brain, 90.0, 5.0) + rng.normal(0, 8, (size, size))
    quadrant = QUADRANTS[class_name]
    if quadrant is not None:
        qy, qx = quadrant
        cy = size * (0.25 + 0.5 * qy) + rng.uniform(-1, 1)
        cx = size * (0.25 + 0.5 * qx) + rng.uniform(-1, 1)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < (0.12 * size) ** 2
        image = np.where(blob, 230.0, image)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def write_dataset(root: Path, n_train: int = 12, n_test: int = 6, size: int = 48, seed: int = 0) -> Path:
    """Write root/{Training,Testing}/<class>/*.png and return root."""
    rng = np.random.default_rng(seed)
    for split, n in (("Training", n_train), ("Testing", n_test)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{split[:2]}-{name}-{i:03d}.png"), synthetic_scan(name, size, rng))
    return root
