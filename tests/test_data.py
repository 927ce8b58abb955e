"""Dataset discovery, splits, skipping unreadable files, and train/inference tensor identity."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core.data.discovery import discover, file_hash, load_samples, make_splits
from core.errors import DataLayoutError
from core.io.images import load_for_model
from tests.synthetic import CLASSES, write_dataset


def _break(root: Path, how: str) -> Path:
    if how == "no_testing":
        shutil.rmtree(root / "Testing")
    elif how == "flat":
        for split in ("Training", "Testing"):
            for c in CLASSES[1:]:
                shutil.rmtree(root / split / c)
    elif how == "mismatch":
        (root / "Testing" / "pituitary").rename(root / "Testing" / "pituitary_tumor")
    elif how == "empty_class":
        for f in (root / "Training" / "glioma").iterdir():
            f.unlink()
    elif how == "missing_root":
        return root / "does-not-exist"
    return root


@pytest.mark.parametrize("how, message", [
    ("ok", None),
    ("no_testing", "no 'Testing' folder"),
    ("flat", "one folder per class"),
    ("mismatch", "Class folders differ"),
    ("empty_class", "holds no images"),
    ("missing_root", "does not exist"),
])
def test_discover_layout(tmp_path, how, message):
    root = _break(write_dataset(tmp_path, n_train=3, n_test=2, size=16), how)
    if message is None:
        index = discover(root)
        assert index.class_names == sorted(CLASSES)
        assert index.counts("Training") == {c: 3 for c in CLASSES}
        assert index.counts("Testing") == {c: 2 for c in CLASSES}
        return
    with pytest.raises(DataLayoutError, match=message) as info:
        discover(root)
    assert "Training/<class>" in str(info.value)


def test_default_split_is_stratified_and_keeps_identical_files_together(tmp_path):
    root = write_dataset(tmp_path, n_train=20, n_test=2, size=16)
    src = root / "Training" / "glioma" / "Tr-glioma-000.png"
    for i in range(3):
        shutil.copy(src, root / "Training" / "glioma" / f"copy-{i}.png")
    splits = make_splits(discover(root), "default", 0.1, seed=1)
    assert {len([s for s in splits["validation"] if s.label == k]) for k in range(4)} <= {2, 3, 4}
    assert len(splits["test"]) == 8
    side = {s.path.name: part for part in ("train", "validation") for s in splits[part]}
    assert len({side[n] for n in ("Tr-glioma-000.png", "copy-0.png", "copy-1.png", "copy-2.png")}) == 1
    train_hashes = {file_hash(s.path) for s in splits["train"]}
    assert not any(file_hash(s.path) in train_hashes for s in splits["validation"])
    again = make_splits(discover(root), "default", 0.1, seed=1)
    assert [s.path for s in again["validation"]] == [s.path for s in splits["validation"]]


def test_spec_protocol_halves_testing(tmp_path):
    root = write_dataset(tmp_path, n_train=4, n_test=10, size=16)
    splits = make_splits(discover(root), "spec", seed=3)
    assert len(splits["train"]) == 16
    assert len(splits["validation"]) == len(splits["test"]) == 20
    assert {s.label for s in splits["test"]} == {0, 1, 2, 3}
    with pytest.raises(DataLayoutError, match="Unknown split protocol"):
        make_splits(discover(root), "random")


def test_unreadable_images_are_skipped_counted_and_reported(tmp_path):
    root = write_dataset(tmp_path, n_train=3, n_test=1, size=16)
    (root / "Training" / "glioma" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    index = discover(root)
    loaded = load_samples(index.splits["Training"], 16)
    assert len(loaded.labels) == 12 and len(loaded.skipped) == 1
    assert "broken.jpg" in loaded.skipped[0]


def test_training_and_inference_tensors_are_identical(tiny_dataset):
    from core.training.loop import make_dataset

    index = discover(tiny_dataset)
    samples = index.splits["Testing"][:5]
    loaded = load_samples(samples, 32)
    batch, _ = make_dataset(loaded.images, loaded.labels, 4, 5, training=False, seed=0)[0]
    expected = np.stack([load_for_model(s.path, 32) for s in samples])
    assert np.array_equal(batch, expected)


def test_augmentation_changes_images_but_keeps_shape_and_range(tiny_dataset):
    from core.training.loop import make_dataset

    loaded = load_samples(discover(tiny_dataset).splits["Training"][:8], 32)
    feed = make_dataset(loaded.images, loaded.labels, 4, 8, training=True, seed=0)
    batch, labels = feed[0]
    assert batch.shape == (8, 32, 32, 3) and labels.shape == (8, 4) and batch.dtype == np.float32
    assert 0 <= float(batch.min()) and float(batch.max()) <= 255
    assert not np.array_equal(np.sort(batch.ravel()), np.sort(loaded.images.astype(np.float32).ravel()))
    again = make_dataset(loaded.images, loaded.labels, 4, 8, training=True, seed=0)
    np.testing.assert_array_equal(again[0][0], batch)          # same seed, same epoch: identical batches
    again.on_epoch_end()
    assert not np.array_equal(again[0][0], batch)              # the next epoch draws anew
    other = make_dataset(loaded.images, loaded.labels, 4, 8, training=True, seed=1)
    assert not np.array_equal(other[0][0], batch)


def test_each_image_has_its_own_augmentation_draws():
    from core.training.augment import augment, image_rng

    scan = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))
    a = augment(scan, image_rng(0, 0, 1), "robust")
    b = augment(scan, image_rng(0, 0, 2), "robust")
    np.testing.assert_array_equal(a, augment(scan, image_rng(0, 0, 1), "robust"))
    assert a.shape == scan.shape and a.dtype == np.uint8 and not np.array_equal(a, b)
    np.testing.assert_array_equal(augment(scan, image_rng(0, 0, 1), "none"), scan)


def test_crop_to_head_removes_framing():
    from core.io.images import crop_to_head, preprocess

    yy, xx = np.mgrid[:150, :120]
    head = np.where(((yy - 75) / 74.0) ** 2 + ((xx - 60) / 59.0) ** 2 < 1, 60 + yy // 2, 0).astype(np.uint8)
    framed = np.zeros((240, 360, 3), np.uint8)
    framed[60:210, 200:320] = head[..., None]               # small, off-centre, in a wide frame
    tight = np.zeros((170, 140, 3), np.uint8)
    tight[10:160, 10:130] = head[..., None]                 # the same head filling its frame
    a, b = preprocess(framed, 32, "head"), preprocess(tight, 32, "head")
    assert np.abs(a - b).mean() < 6.0                        # same head, different framing: nearly the same input
    assert np.abs(preprocess(framed, 32) - preprocess(tight, 32)).mean() > 20
    cropped = crop_to_head(framed)
    assert cropped.shape[0] == cropped.shape[1] and 150 <= cropped.shape[0] < 175


@pytest.mark.data
def test_real_dataset_layout(real_data):
    index = discover(real_data)
    assert index.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert len(index.splits["Training"]) == 5708 and len(index.splits["Testing"]) == 1311
