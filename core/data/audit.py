"""Leakage audit: exact (byte hash) and near-duplicate (thumbnail correlation) pairs across splits.

Near duplicates: each scan is shrunk to a 64x64 grayscale thumbnail, standardised (zero mean,
unit norm), and a test/training pair whose Pearson correlation is >= `threshold` counts as a near
copy. Measured on the shared copy of the dataset: correlations >= 0.995 are the same image
re-encoded (none fall in 0.99-0.995), 0.98-0.99 the same slice re-processed (contrast, crop), and
0.95-0.98 adjacent slices of the same series, i.e. the same patient. The default 0.95 treats all
of them as leakage.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.data.discovery import DatasetIndex, Sample, file_hash
from core.errors import ImageDecodeError
from core.io.images import read_image

THUMB_SIZE = 64
NEAR_THRESHOLD = 0.95
LEAKAGE_FREE_FILE = "leakage_free_test.txt"


def thumbnail(path: Path) -> np.ndarray:
    """Standardised grayscale thumbnail as a flat unit vector (zeros if flat or unreadable)."""
    try:
        rgb = read_image(path)
    except ImageDecodeError:
        return np.zeros(THUMB_SIZE * THUMB_SIZE, np.float32)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    norm = np.linalg.norm(small)
    return small / norm if norm > 0 else small


@dataclass
class AuditReport:
    """Result of the audit: which test files have an exact or near copy in Training."""

    class_names: list[str]
    test: list[Sample]
    exact: dict[str, str]
    near: dict[str, tuple[str, float]]
    threshold: float

    @property
    def leaky(self) -> set[str]:
        return set(self.exact) | set(self.near)

    def leakage_free(self) -> list[Sample]:
        leaky = self.leaky
        return [s for s in self.test if s.relpath not in leaky]

    def summary(self) -> dict:
        rows = {}
        for i, name in enumerate(self.class_names):
            files = [s.relpath for s in self.test if s.label == i]
            rows[name] = {
                "test": len(files),
                "exact": sum(f in self.exact for f in files),
                "near_only": sum(f in self.near and f not in self.exact for f in files),
                "leakage_free": sum(f not in self.leaky for f in files),
            }
        total = {k: sum(r[k] for r in rows.values()) for k in ("test", "exact", "near_only", "leakage_free")}
        return {"per_class": rows, "total": total, "near_threshold": self.threshold, "thumbnail": THUMB_SIZE}


def audit(index: DatasetIndex, threshold: float = NEAR_THRESHOLD,
          progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """Compare every Testing file with every Training file."""
    train, test = index.splits["Training"], index.splits["Testing"]
    everything = train + test
    hashes, thumbs = [], []
    for i, sample in enumerate(everything):
        hashes.append(file_hash(sample.path))
        thumbs.append(thumbnail(sample.path))
        if progress:
            progress(i + 1, len(everything))
    train_hash = {}
    for sample, h in zip(train, hashes[:len(train)]):
        train_hash.setdefault(h, sample.relpath)
    exact = {s.relpath: train_hash[h] for s, h in zip(test, hashes[len(train):]) if h in train_hash}
    a = np.stack(thumbs[len(train):])
    b = np.stack(thumbs[:len(train)])
    near = {}
    for start in range(0, len(a), 512):
        corr = a[start:start + 512] @ b.T
        best = corr.argmax(axis=1)
        for offset, j in enumerate(best):
            value = float(corr[offset, j])
            if value >= threshold:
                near[test[start + offset].relpath] = (train[j].relpath, round(value, 4))
    return AuditReport(index.class_names, test, exact, near, threshold)


def write_report(report: AuditReport, out_dir: Path) -> Path:
    """Write the leakage-free list (one relative path per line) and the full audit as JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    free = out_dir / LEAKAGE_FREE_FILE
    free.write_text("".join(s.relpath + "\n" for s in report.leakage_free()))
    (out_dir / "leakage_audit.json").write_text(json.dumps(
        {**report.summary(), "exact_pairs": report.exact,
         "near_pairs": {k: list(v) for k, v in report.near.items()}}, indent=1) + "\n")
    return free
