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
    batch, _ = next(iter(make_dataset(loaded.images, loaded.labels, 4, 5, training=False, seed=0)))
    expected = np.stack([load_for_model(s.path, 32) for s in samples])
    assert np.array_equal(batch.numpy(), expected)


def test_augmentation_changes_images_but_keeps_shape_and_range(tiny_dataset):
    from core.training.loop import make_dataset

    loaded = load_samples(discover(tiny_dataset).splits["Training"][:8], 32)
    batch, labels = next(iter(make_dataset(loaded.images, loaded.labels, 4, 8, training=True, seed=0)))
    assert batch.shape == (8, 32, 32, 3) and labels.shape == (8, 4)
    assert 0 <= float(batch.numpy().min()) and float(batch.numpy().max()) <= 255
    assert not np.array_equal(np.sort(batch.numpy().ravel()), np.sort(loaded.images.astype(np.float32).ravel()))


@pytest.mark.data
def test_real_dataset_layout(real_data):
    index = discover(real_data)
    assert index.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert len(index.splits["Training"]) == 5708 and len(index.splits["Testing"]) == 1311
