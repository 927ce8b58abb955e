"""The leakage audit finds planted exact and near duplicates, and nothing else."""
from __future__ import annotations

import shutil

import cv2
import numpy as np

from core.data.audit import LEAKAGE_FREE_FILE, audit, write_report
from core.data.discovery import discover


def _distinct_dataset(root, n_train: int = 6, n_test: int = 4, seed: int = 5):
    """Scans that are pairwise uncorrelated (smoothed noise), so only planted copies match."""
    rng = np.random.default_rng(seed)
    for split, n in (("Training", n_train), ("Testing", n_test)):
        for c in ("glioma", "meningioma", "notumor", "pituitary"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                noise = cv2.GaussianBlur(rng.normal(128, 60, (64, 64)), (0, 0), 3)
                cv2.imwrite(str(root / split / c / f"{split[:2]}-{c}-{i:03d}.png"), np.clip(noise, 0, 255).astype(np.uint8))
    return root


def test_audit_finds_planted_exact_and_near_duplicates(tmp_path):
    root = _distinct_dataset(tmp_path / "d")
    train_img = root / "Training" / "meningioma" / "Tr-meningioma-002.png"
    shutil.copy(train_img, root / "Testing" / "meningioma" / "exact-copy.png")
    near = cv2.imread(str(root / "Training" / "pituitary" / "Tr-pituitary-004.png"))
    near = np.clip(near.astype(int) * 1.05 + 3, 0, 255).astype(np.uint8)
    cv2.imwrite(str(root / "Testing" / "pituitary" / "near-copy.jpg"), near, [cv2.IMWRITE_JPEG_QUALITY, 70])
    report = audit(discover(root))
    assert set(report.exact) == {"Testing/meningioma/exact-copy.png"}
    assert report.exact["Testing/meningioma/exact-copy.png"] == "Training/meningioma/Tr-meningioma-002.png"
    assert report.near["Testing/pituitary/near-copy.jpg"][0] == "Training/pituitary/Tr-pituitary-004.png"
    summary = report.summary()
    assert summary["total"]["test"] == 18 and summary["total"]["exact"] == 1
    assert summary["per_class"]["meningioma"]["leakage_free"] == summary["per_class"]["meningioma"]["test"] - 1
    out = write_report(report, tmp_path / "out")
    assert out.name == LEAKAGE_FREE_FILE
    listed = out.read_text().split()
    assert "Testing/meningioma/exact-copy.png" not in listed and "Testing/pituitary/near-copy.jpg" not in listed
    assert len(listed) == summary["total"]["leakage_free"]


def test_distinct_scans_are_not_flagged(tmp_path):
    report = audit(discover(_distinct_dataset(tmp_path / "d", seed=9)))
    assert not report.exact and not report.near
