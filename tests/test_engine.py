"""The forward-pass engine behind core.model.inference: OpenVINO against TensorFlow (tiny model: exactness, the
conversion cache, the load check's fallbacks; the bundled model on real scans: the clinician's numbers and the
Score-CAM / LIME maps unchanged)."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from core.errors import ModelNotFoundError
from core.model import engine
from core.model.engine_check import TOLERANCE, probe_batch, select_engine
from core.model.inference import predict_proba, predict_with_features

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "assets" / "models" / "default"


@pytest.fixture
def tf_model(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The tiny model loaded on TensorFlow, its card and file."""
    from core.model.factory import load_model

    monkeypatch.setenv("BRAINSCAN_ENGINE", "tensorflow")
    model, card = load_model(tiny_model_dir)
    return model, card, tiny_model_dir / "model.keras"


def _tf_outputs(model, batch):
    engine.attach(model, None)
    return predict_with_features(model, batch)


def test_openvino_f32_gives_tensorflows_numbers_and_features(tf_model, tmp_path):
    model, card, path = tf_model
    batch = np.random.default_rng(0).uniform(0, 255, (70, card.image_size, card.image_size, 3)).astype(np.float32)
    proba, features = _tf_outputs(model, batch)
    choice = select_engine(model, card, path, "openvino-f32", tmp_path)
    assert (choice.engine, engine.engine_name(model)) == ("openvino-f32", "openvino-f32")
    assert choice.max_abs_dp is not None and choice.max_abs_dp <= 1e-5
    np.testing.assert_allclose(predict_proba(model, batch), proba, atol=1e-5)  # 70 = a full and a partial batch
    ov_proba, ov_features = predict_with_features(model, batch)
    np.testing.assert_allclose(ov_proba, proba, atol=1e-5)
    assert set(ov_features) == set(features)
    for name, values in features.items():
        np.testing.assert_allclose(ov_features[name], values, atol=1e-4, rtol=1e-4, err_msg=name)


def test_conversion_is_cached_by_model_hash(tf_model, tmp_path):
    model, card, path = tf_model
    first = select_engine(model, card, path, "openvino-f32", tmp_path)
    again = select_engine(model, card, path, "openvino-f32", tmp_path)
    assert first.convert_seconds > 0 and again.convert_seconds == 0.0
    folders = [p.name for p in tmp_path.iterdir() if p.name != "compiled"]
    assert len(folders) == 1 and folders[0].startswith(engine.file_sha256(path))


def test_tensorflow_setting_and_bad_setting(tf_model, tmp_path, monkeypatch):
    model, card, path = tf_model
    assert select_engine(model, card, path, "tensorflow", tmp_path).engine == "tensorflow"
    assert engine.engine_name(model) == "tensorflow" and not list(tmp_path.iterdir())
    with pytest.raises(ModelNotFoundError, match="BRAINSCAN_ENGINE='onnx'"):
        select_engine(model, card, path, "onnx", tmp_path)


def test_auto_tries_f32_only_and_bf16_only_where_supported(monkeypatch):
    assert engine.candidates("auto") == engine.candidates("openvino") == ["openvino-f32"]
    monkeypatch.setattr(engine, "bf16_supported", lambda: False)
    assert engine.candidates("openvino-bf16") == ["openvino-f32"]
    monkeypatch.setattr(engine, "bf16_supported", lambda: True)
    assert engine.candidates("openvino-bf16") == ["openvino-bf16", "openvino-f32"]
    assert engine.candidates("tensorflow") == []


def test_a_runtime_that_disagrees_falls_back_to_tensorflow(tf_model, tmp_path, monkeypatch, caplog):
    model, card, path = tf_model
    real = engine.compile_runner

    def swapped(*args):  # the same runtime with its probabilities' class order reversed
        runner = real(*args)

        def compiled(batch):
            flat = np.array(runner.compiled(batch)[0])
            flat[:, :runner.widths[0]] = flat[:, runner.widths[0] - 1::-1]
            return [flat]

        return dataclasses.replace(runner, compiled=compiled)

    monkeypatch.setattr(engine, "compile_runner", swapped)
    with caplog.at_level(logging.WARNING):
        choice = select_engine(model, card, path, "openvino-f32", tmp_path)
    assert choice.engine == "tensorflow" and engine.engine_name(model) == "tensorflow"
    assert "falls back to TensorFlow" in caplog.text and "openvino-f32: it changes" in caplog.text


def test_a_runtime_that_fails_falls_back_to_tensorflow(tf_model, tmp_path, monkeypatch):
    model, card, path = tf_model

    def broken(*args):
        raise RuntimeError("no CPU plugin")

    monkeypatch.setattr(engine, "compile_runner", broken)
    choice = select_engine(model, card, path, "auto", tmp_path)
    assert choice.engine == "tensorflow" and "could not be used (RuntimeError: no CPU plugin)" in choice.reason


def test_probe_batch_holds_the_samples_their_mirrors_and_masked_scans(tf_model):
    _, card, _ = tf_model
    batch = probe_batch(card)
    assert batch.shape == (10, card.image_size, card.image_size, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[4], batch[0][:, ::-1])
    assert not batch[8].any() and not batch[9][:, card.image_size // 2:].any()


@pytest.fixture(scope="module")
def bundled():
    """The bundled model loaded with the default setting (auto), and the runner the load check attached (loaded
    only where the real data is, the tests that use it being `data` tests)."""
    from core.model.factory import load_model
    from tests.conftest import REAL_DATA

    if not (REAL_DATA / "Testing").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA} (set BRAINSCAN_DATA)")

    model, card = load_model(BUNDLED)
    select_engine(model, card, BUNDLED / card.model_file, "auto")
    return model, card, engine.runner(model)


@pytest.mark.data
def test_chosen_engine_shows_the_clinician_the_same_answers_on_all_of_testing(bundled, real_data):
    from core.data.discovery import discover_for_model, load_samples
    from core.model.trust import load_trust

    model, card, chosen = bundled
    assert chosen is not None, "auto kept TensorFlow: OpenVINO failed the load check (see the log)"
    index = discover_for_model(real_data, card.class_names, ["Testing"])
    images = load_samples(index.splits["Testing"], card.image_size, crop=card.crop).images.astype(np.float32)
    assert len(images) == 1311
    trust = load_trust(BUNDLED, card.class_names)
    try:
        shown = {}
        for name, runner in (("tensorflow", None), (chosen.name, chosen)):
            engine.attach(model, runner)
            proba, features = predict_with_features(model, images)
            shown[name] = (proba, trust.calibrate(features["logits"]))
    finally:
        engine.attach(model, chosen)
    for reference, trial in zip(shown["tensorflow"], shown[chosen.name]):
        np.testing.assert_array_equal(trial.argmax(1), reference.argmax(1))
        assert np.abs(trial - reference).max() <= TOLERANCE


@pytest.mark.data
def test_scorecam_and_lime_maps_are_unchanged_by_the_engine(bundled, real_data):
    from core.io.images import load_for_model
    from core.xai.explainers import explain

    model, card, chosen = bundled
    assert chosen is not None
    scans = [sorted((real_data / "Testing" / c).glob("*.jpg"))[7] for c in ("glioma", "meningioma", "pituitary")]
    try:
        for path in scans:
            image = load_for_model(path, card.image_size, crop=card.crop).astype(np.float32)
            for method in ("scorecam", "lime"):
                maps = []
                for runner in (None, chosen):
                    engine.attach(model, runner)
                    maps.append(explain(model, image, method).map.ravel())
                assert spearmanr(*maps).statistic >= 0.98, (path.name, method)
    finally:
        engine.attach(model, chosen)
