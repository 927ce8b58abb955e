"""Shared fixtures: a tiny synthetic dataset and a tiny trained model folder (TinyCNN, 32 px)."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tests.synthetic import CLASSES, write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(os.environ.get("BRAINSCAN_DATA", REPO.parent / "shared" / "data" / "brain-tumor-mri"))
TINY_SIZE = 32


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long tests (real data, full model); run with -m slow")
    config.addinivalue_line("markers", "data: needs the real dataset at BRAINSCAN_DATA or ../shared/data")
    config.addinivalue_line("markers", "browser: drives a real Chromium")


@pytest.fixture(autouse=True)
def _finish_app_warm_ups():
    """A test that loads a model in the app ends when the app's background warm-up of the explainers
    has: TensorFlow work still running in a thread when the interpreter exits aborts it."""
    yield
    shared = sys.modules.get("ui.services")  # only the app starts warm-ups
    for thread in threading.enumerate() if shared else []:
        if thread.name == shared.WARM_UP_THREAD:
            thread.join(300)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training/ and Testing/ with 12 + 6 synthetic PNG scans per class (48 px)."""
    return write_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TinyCNN (32 px) trained a few epochs on the synthetic data, saved with its model card."""
    import keras

    from core.data.discovery import discover, load_samples
    from core.model.card import ModelCard
    from core.model.factory import build_model, feature_layer_name

    keras.utils.set_random_seed(0)
    index = discover(tiny_dataset)
    loaded = load_samples(index.splits["Training"], TINY_SIZE)
    model = build_model(len(index.class_names), TINY_SIZE, "TinyCNN", None, dropout=0.0)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(loaded.images.astype("float32"), loaded.labels, epochs=40, batch_size=16, verbose=0)
    out = tmp_path_factory.mktemp("model")
    model.save(out / "model.keras")
    ModelCard(class_names=index.class_names, image_size=TINY_SIZE, backbone="TinyCNN", weights_origin="none",
              feature_layer=feature_layer_name(model), name="tiny-test-model").save(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """(model, card) loaded from tiny_model_dir."""
    from core.model.factory import load_model

    return load_model(tiny_model_dir)


@pytest.fixture
def real_data() -> Path:
    """The shared real dataset; skips the test with the reason when it is absent."""
    if not (REAL_DATA / "Testing").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA} (set BRAINSCAN_DATA)")
    return REAL_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


__all__ = ["CLASSES", "REPO", "REAL_DATA", "TINY_SIZE"]
