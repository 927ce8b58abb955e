"""The leakage check finds planted exact and near duplicates, and nothing else."""
from __future__ import annotations

import shutil

import cv2
import numpy as np

from core.data.discovery import discover
from core.data.leakage import LEAKAGE_FREE_FILE, check_leakage, write_leakage_report


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


def test_leakage_check_finds_planted_exact_and_near_duplicates(tmp_path):
    root = _distinct_dataset(tmp_path / "d")
    train_img = root / "Training" / "meningioma" / "Tr-meningioma-002.png"
    shutil.copy(train_img, root / "Testing" / "meningioma" / "exact-copy.png")
    near = cv2.imread(str(root / "Training" / "pituitary" / "Tr-pituitary-004.png"))
    near = np.clip(near.astype(int) * 1.05 + 3, 0, 255).astype(np.uint8)
    cv2.imwrite(str(root / "Testing" / "pituitary" / "near-copy.jpg"), near, [cv2.IMWRITE_JPEG_QUALITY, 70])
    report = check_leakage(discover(root))
    assert set(report.exact) == {"Testing/meningioma/exact-copy.png"}
    assert report.exact["Testing/meningioma/exact-copy.png"] == "Training/meningioma/Tr-meningioma-002.png"
    assert report.near["Testing/pituitary/near-copy.jpg"][0] == "Training/pituitary/Tr-pituitary-004.png"
    summary = report.summary()
    assert summary["total"]["test"] == 18 and summary["total"]["exact"] == 1
    assert summary["per_class"]["meningioma"]["leakage_free"] == summary["per_class"]["meningioma"]["test"] - 1
    out = write_leakage_report(report, tmp_path / "out")
    assert out.name == LEAKAGE_FREE_FILE
    listed = out.read_text().split()
    assert "Testing/meningioma/exact-copy.png" not in listed and "Testing/pituitary/near-copy.jpg" not in listed
    assert len(listed) == summary["total"]["leakage_free"]


def test_distinct_scans_are_not_flagged(tmp_path):
    report = check_leakage(discover(_distinct_dataset(tmp_path / "d", seed=9)))
    assert not report.exact and not report.near


def test_mirrored_and_reframed_copies_join_their_source_group(tmp_path):
    """A left-right mirror and a zoomed-out (re-framed) copy of a training scan are not 'unseen'."""
    root = _distinct_dataset(tmp_path / "d")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:128, :128]
    head = ((yy - 60) / 52.0) ** 2 + ((xx - 68) / 44.0) ** 2 < 1            # an off-centre, asymmetric "head"
    texture = cv2.GaussianBlur(rng.normal(0, 80, (128, 128)), (0, 0), 6)
    source = np.where(head, np.clip(120 + texture, 30, 255), 0).astype(np.uint8)
    cv2.imwrite(str(root / "Training" / "glioma" / "Tr-glioma-001.png"), source)
    cv2.imwrite(str(root / "Testing" / "glioma" / "mirror.png"), source[:, ::-1])
    padded = np.zeros((256, 256), np.uint8)
    padded[20:148, 100:228] = source                          # the same slice, smaller inside a larger black frame
    cv2.imwrite(str(root / "Testing" / "glioma" / "reframed.png"), padded)
    report = check_leakage(discover(root), masks_index=None)
    assert "Testing/glioma/mirror.png" not in report.near          # the older check misses the mirror...
    for name in ("mirror.png", "reframed.png"):                      # ...the grouped check does not
        relpath = f"Testing/glioma/{name}"
        assert relpath not in report.unseen
        assert report.groups[relpath] == report.groups["Training/glioma/Tr-glioma-001.png"]
    assert report.summary()["total"]["unseen"] == report.summary()["total"]["test"] - 2


def test_source_ids_group_scans_and_the_grouped_split_keeps_groups_whole(tmp_path):
    from core.data.discovery import make_splits

    root = _distinct_dataset(tmp_path / "d", n_train=10)
    index_csv = tmp_path / "index.csv"
    index_csv.write_text("file,source_image\n"
                         "Testing/pituitary/Te-pituitary-000.png,figshare:7\n"
                         "Training/pituitary/Tr-pituitary-003.png,figshare:7\n"
                         "Training/pituitary/Tr-pituitary-004.png,figshare:7\n")
    index = discover(root)
    report = check_leakage(index, masks_index=index_csv)
    assert "Testing/pituitary/Te-pituitary-000.png" not in report.unseen
    assert len(report.unseen) == len(report.test) - 1
    pair = {"Training/pituitary/Tr-pituitary-003.png", "Training/pituitary/Tr-pituitary-004.png"}
    for seed in range(6):
        splits = make_splits(index, "grouped", 0.2, seed, report.groups)
        sides = {s.relpath: side for side in ("train", "validation") for s in splits[side]}
        assert len({sides[p] for p in pair}) == 1                     # one source slice, one side
        assert len(splits["validation"]) == 8 and len(splits["train"]) == 32
