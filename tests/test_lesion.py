"""Auxiliary lesion supervision: masks follow their scans through crop and augmentation, the loss is the
classification loss plus the weighted lesion term (nothing on ignored targets), and a run exports a plain
classifier."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.io.images import preprocess
from core.training import lesion as les
from core.training.augment import augment, image_rng
from tests.synthetic import write_masks

REPO = Path(__file__).resolve().parent.parent


def _square_scan(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    scan = np.zeros((size, size, 3), np.uint8)
    scan[8:56, 16:60] = 90                      # an off-centre "head": the head crop moves it
    scan[20:30, 40:52] = 250                    # the "lesion"
    mask = np.zeros((size, size), np.uint8)
    mask[20:30, 40:52] = 255
    return scan, mask


@pytest.mark.parametrize("kind", ["spec", "robust"])
def test_mask_moves_with_the_scan_and_the_scan_is_unchanged(kind):
    scan, mask = _square_scan()
    alone = augment(scan, image_rng(7, 3, 11), kind)
    both = augment(np.concatenate([scan, mask[..., None]], axis=2), image_rng(7, 3, 11), kind)
    assert np.array_equal(both[..., :3], alone)           # same draws, same order: the scan is what it was
    if kind == "spec":                                   # geometry only: the lesion pixels are the mask's pixels
        assert np.array_equal(both[..., 3] > 127, augment(scan, image_rng(7, 3, 11), kind)[..., 0] > 170)
    assert both[..., 3].max() == 255 and set(np.unique(both[..., 3] > 127)) == {False, True}


def test_masks_get_their_scans_head_crop(tmp_path):
    scan, mask = _square_scan()
    root = tmp_path / "data" / "Training" / "glioma"
    root.mkdir(parents=True)
    cv2.imwrite(str(root / "Tr-gl_0001.png"), scan[..., ::-1])
    masks = tmp_path / "masks"
    (masks / "Training" / "glioma").mkdir(parents=True)
    cv2.imwrite(str(masks / "Training" / "glioma" / "m.png"), mask)
    (masks / "index.csv").write_text("split,class,file,mask,mask_area_fraction,flag,source_image\n"
                                     "Training,glioma,Training/glioma/Tr-gl_0001.png,Training/glioma/m.png,0.03,,s1\n")

    class Sample:
        path, relpath, label = root / "Tr-gl_0001.png", "Training/glioma/Tr-gl_0001.png", 0

    class Other:
        path, relpath, label = root / "Tr-gl_0001.png", "Training/glioma/missing.png", 0

    class Normal:
        path, relpath, label = root / "Tr-gl_0001.png", "Training/notumor/x.png", 2

    out, known = les.lesion_masks([Sample, Other, Normal], 32, "head", masks, normal_label=2)
    lesion = preprocess(scan, 32, "head")[..., 0] > 170
    assert np.array_equal(out[0] > 127, lesion) and lesion.sum() > 5
    assert known.tolist() == [True, False, True] and out[1:].max() == 0
    targets = les.grid_targets(out, known, 4)
    assert targets[1].tolist() == [[-1.0] * 4] * 4 and targets[2].max() == 0.0
    assert targets[0].mean() == pytest.approx(out[0].mean() / 255.0, abs=1e-6)    # area fractions per cell
    assert 0 < (targets[0] > 0).sum() < 16


def test_lesion_loss_adds_to_the_classification_loss_and_learns():
    import keras

    from core.model.factory import build_model
    from core.training.augment import batch_dataset

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = (rng.random((16, 32, 32, 3)) * 255).astype(np.uint8)
    labels = rng.integers(0, 4, 16)
    masks = np.zeros((16, 32, 32), np.uint8)
    masks[:, 8:16, 8:16] = 255
    classifier = build_model(4, 32, "TinyCNN", weights="none")
    model = les.with_lesion_head(classifier, 2.0)
    grid = les.feature_grid(model)
    assert grid == 8 == les.feature_grid(classifier)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    classifier.compile(loss="categorical_crossentropy")
    ignored = batch_dataset(images, labels, 4, 16, "none", 0, False, None, grid)
    supervised = batch_dataset(images, labels, 4, 16, "none", 0, False, (masks, np.ones(16, bool)), grid)
    plain = classifier.evaluate(images.astype(np.float32), np.eye(4)[labels], verbose=0)
    assert model.evaluate(ignored, verbose=0) == pytest.approx(plain, rel=1e-5)
    before = model.evaluate(supervised, verbose=0) - plain
    assert before > 0.5                                   # 2 x BCE of an untrained head (about 0.69 each)
    model.fit(supervised, epochs=30, verbose=0)
    after = model.evaluate(supervised, verbose=0) - classifier.evaluate(images.astype(np.float32),
                                                                        np.eye(4)[labels], verbose=0)
    assert after < before / 2


def test_run_with_mask_weight_exports_a_plain_classifier(tiny_dataset, tmp_path):
    from core.model.factory import load_model

    masks = write_masks(tiny_dataset, tmp_path / "masks")
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "train", "--data", str(tiny_dataset), "--run-dir", str(run_dir), "--backbone",
            "TinyCNN", "--weights", "none", "--image-size", "32", "--batch-size", "4", "--epochs-scratch", "2",
            "--warmup-epochs", "0", "--augment", "spec", "--limit-per-class", "6", "--mask-weight", "0.5",
            "--masks", str(masks)]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "lesion supervision (weight 0.5)" in log and "on a 8x8 grid" in log
    model, card = load_model(run_dir / "model")
    assert not [layer.name for layer in model.layers if layer.name.startswith("lesion")]
    assert len(model.inputs) == 1 and card.training["config"]["mask_weight"] == 0.5
    assert any("lesion supervision" in note for note in card.notes)
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history) == 2 and np.isfinite(history[-1]["val_loss"])


def test_weights_copy_by_position_across_builds_and_refuse_another_architecture():
    """Keras numbers unnamed layers per process (`normalization`, `normalization_1`): the export matches layers
    by position, not name, and refuses a model of another architecture."""
    from core.model.factory import build_model

    first = build_model(4, 32, "EfficientNetB0", weights="none")
    second = build_model(4, 32, "EfficientNetB0", weights="none")
    assert {layer.name for layer in first.layers} != {layer.name for layer in second.layers}
    les.copy_classifier_weights(les.with_lesion_head(first, 1.0), second)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(first.predict(x, verbose=0), second.predict(x, verbose=0))
    with pytest.raises(ValueError, match="not the same architecture"):
        les.copy_classifier_weights(first, build_model(4, 32, "TinyCNN", weights="none"))
