"""The bundled default model: complete model card, size limit, real scans, reproducible evaluation."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.model.card import load_card
from core.model.factory import default_model_dir, load_model
from core.model.inference import classify
from tests.conftest import REPO

BUNDLED = REPO / "assets" / "models" / "default"


def test_default_model_dir_is_the_bundled_one(monkeypatch):
    monkeypatch.delenv("BRAINSCAN_MODEL", raising=False)
    assert default_model_dir() == BUNDLED


def test_bundled_model_card_is_complete_and_honest():
    card = load_card(BUNDLED)
    assert (BUNDLED / card.model_file).stat().st_size <= 50 * 1024 * 1024
    assert card.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert card.weights_origin == "none" and any("from scratch" in n for n in card.notes)
    training = card.training
    assert training["config"]["command"].startswith("python -m train")
    assert training["wall_seconds"] > 0 and training["machine"]["cpus"] >= 1
    assert set(training["data_fingerprint"]) == {"train", "validation", "test"}
    ev = card.evaluation
    assert ev["test"]["n"] == 1311 and 0 < ev["test_leakage_free"]["n"] < 1311
    for part in ("validation", "test", "test_leakage_free"):
        assert {"accuracy", "loss", "macro_f1", "cohen_kappa", "macro_auc", "confusion_matrix"} <= set(ev[part])
    assert (BUNDLED / "history.json").is_file()


def test_bundled_model_classifies_the_sample_scans():
    model, card = load_model(BUNDLED)
    samples = sorted((REPO / "assets" / "samples").glob("Te-*.jpg"))
    prefix = {"gl": "glioma", "me": "meningioma", "no": "notumor", "pi": "pituitary"}
    results = [classify(model, card, path) for path in samples]
    assert len(results) == 4
    assert all(abs(sum(r.probabilities.values()) - 1) < 1e-4 for r in results)
    correct = sum(r.predicted == prefix[p.name[3:5]] for r, p in zip(results, samples))
    assert correct >= 3, [(p.name, r.predicted) for r, p in zip(results, samples)]


@pytest.mark.data
def test_cli_evaluate_reproduces_the_model_card(real_data):
    result = subprocess.run([sys.executable, "-m", "core", "evaluate", "--data", str(real_data), "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout)
    card = load_card(BUNDLED)
    for part in ("test", "test_leakage_free", "validation"):
        assert measured[part]["accuracy"] == pytest.approx(card.evaluation[part]["accuracy"], abs=1e-9)
        assert measured[part]["n"] == card.evaluation[part]["n"]


def test_one_inference_path_agrees_with_keras_predict_on_real_scans():
    """Classification, evaluation, explainers and XAI metrics all call `predict_proba`; it must give what
    Keras' own `model.predict` gives on real scans, and `classify` must be the same numbers."""
    import numpy as np

    from core.io.images import load_for_model
    from core.model.inference import predict_proba

    model, card = load_model(BUNDLED)
    samples = sorted((REPO / "assets" / "samples").glob("Te-*.jpg"))
    images = np.stack([load_for_model(p, card.image_size, crop=card.crop) for p in samples])
    ours = predict_proba(model, images)
    reference = model.predict(images, verbose=0)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    for path, row in zip(samples, ours):
        result = classify(model, card, path)
        np.testing.assert_allclose([result.probabilities[c] for c in card.class_names], row, atol=1e-5)
