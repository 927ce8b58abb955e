"""Tiny synthetic scans for fast tests: each tumour class is a blob of its own size and brightness.

The classes differ in what the blob looks like, not where it is, so the training augmentation
(flips, rotations, shifts) keeps them apart and a small pooled CNN learns them in a few epochs.
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
# Pituitary is a mid-grey blob: a dark one (value 10) looked, to a small pooled CNN, like the dark background
# around the brain, so tiny models never told it from "notumor" (test accuracy stuck at 3 classes of 4, 0.75).
BLOBS = {"glioma": (0.12, 235.0), "meningioma": (0.22, 235.0), "notumor": None, "pituitary": (0.16, 160.0)}


def synthetic_scan(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A grayscale 'scan' (RGB uint8): noisy disc of brain, plus a bright blob for tumour classes."""
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    # Every "head" has its own position and texture, as real scans do: no two scans are near-duplicates
    # for the leakage audit (a 0.95 thumbnail correlation), so grouped splits keep them apart.
    hy, hx = c + rng.uniform(-0.05, 0.05, 2) * size
    brain = ((yy - hy) ** 2 + (xx - hx) ** 2) < (0.45 * size) ** 2
    texture = cv2.GaussianBlur(rng.normal(0, 200, (size, size)), (0, 0), size / 12)
    image = np.where(brain, 90.0 + texture, 5.0) + rng.normal(0, 8, (size, size))
    if BLOBS[class_name] is not None:
        radius, value = BLOBS[class_name]
        cy, cx = c + rng.uniform(-0.15, 0.15, 2) * size
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < (radius * size) ** 2
        image = np.where(blob, value, image)
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


def write_masks(dataset: Path, root: Path) -> Path:
    """An index.csv + masks for the synthetic tumour scans: the blob (very bright or very dark inside the disc)."""
    rows = []
    for split in ("Training", "Testing"):
        for cls in ("glioma", "meningioma", "pituitary"):
            for i, f in enumerate(sorted((dataset / split / cls).glob("*.png"))):
                gray = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                mask = (gray > 200) if cls != "pituitary" else (cv2.medianBlur(gray, 3) < 30)
                if cls == "pituitary":
                    yy, xx = np.mgrid[:gray.shape[0], :gray.shape[1]]
                    mask &= (yy - gray.shape[0] / 2) ** 2 + (xx - gray.shape[1] / 2) ** 2 < (0.4 * gray.shape[0]) ** 2
                rel = f"{split}/{cls}/{f.stem}.png"
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / rel), mask.astype(np.uint8) * 255)
                rows.append({"split": split, "class": cls, "file": f"{split}/{cls}/{f.name}", "mask": rel,
                             "mask_area_fraction": f"{mask.mean():.5f}", "flag": "figshare_brisc_disagree" if i == 0
                             else "", "source_image": f"src:{cls}:{i}"})
    with (root / "index.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root
