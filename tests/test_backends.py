"""The training recipe is backend-agnostic: it runs on Keras' JAX backend too, and the model loads on TensorFlow."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from core.model.card import load_card
from core.model.factory import load_model
from core.model.inference import classify
from tests.conftest import REPO
from tests.synthetic import write_masks

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax is not installed (requirements-dev.txt installs it)")


def test_training_runs_on_jax_and_the_model_loads_on_tensorflow(tiny_dataset, tmp_path):
    """The recipe with lesion supervision (a layer that adds a loss) trains on JAX; TensorFlow loads the model."""
    run_dir = tmp_path / "jax-run"
    masks = write_masks(tiny_dataset, tmp_path / "masks")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "train", "--data", str(tiny_dataset), "--run-dir", str(run_dir), "--weights", "none",
         "--backbone", "TinyCNN", "--image-size", "32", "--batch-size", "8", "--epochs-scratch", "2",
         "--limit-per-class", "4", "--seed", "3", "--mask-weight", "0.5", "--masks", str(masks)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    card = load_card(run_dir / "model")
    assert card.training["machine"]["backend"] == "jax" and "jax" in card.training["machine"]
    assert card.crop == "head" and card.training["config"]["augment"] == "robust"
    assert card.training["config"]["mask_weight"] == 0.5 and "lesion supervision" in (run_dir / "train.log").read_text()
    assert card.evaluation["test"]["n"] > 0 and "test_unseen" in card.evaluation
    model, card = load_model(run_dir / "model")                 # this process runs TensorFlow
    prediction = classify(model, card, next((tiny_dataset / "Testing" / "glioma").iterdir()))
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-4
