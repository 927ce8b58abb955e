"""Model factory: flat graph with a reachable feature map, weights origins, save/load round trip."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from core.errors import ModelNotFoundError, TrainingConfigError
from core.model.card import ModelCard
from core.model.factory import build_model, feature_layer_name, head_layer_names, load_model, resolve_weights


def test_efficientnet_is_flat_and_feature_map_reachable():
    model = build_model(4, 64, "EfficientNetB0", None)
    assert feature_layer_name(model) == "top_activation"
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "no nested backbone"
    assert head_layer_names(model) == ["avg_pool", "head_dense", "head_dropout", "predictions"]
    assert model.get_layer("head_dense").units == 256 and model.get_layer("head_dropout").rate == 0.45
    assert model.output_shape == (None, 4)


def test_local_weights_file_is_loaded_into_the_backbone(tmp_path):
    keras.utils.set_random_seed(1)
    base = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "efficientnetb0_notop.weights.h5"
    base.save_weights(path)
    model = build_model(4, 32, "EfficientNetB0", str(path))
    assert np.array_equal(model.get_layer("stem_conv").get_weights()[0], base.get_layer("stem_conv").get_weights()[0])


@pytest.mark.parametrize("weights, expected", [
    ("imagenet", "imagenet"), ("IMAGENET", "imagenet"), ("none", None), (None, None), ("", None),
    ("/no/such/file.h5", TrainingConfigError),
])
def test_weights_origins(weights, expected):
    if expected is TrainingConfigError:
        with pytest.raises(TrainingConfigError, match="does not exist"):
            resolve_weights(weights)
    else:
        assert resolve_weights(weights) == expected


def test_keras_round_trip_keeps_predictions(tmp_path, rng):
    model = build_model(4, 32, "TinyCNN", None)
    model.save(tmp_path / "model.keras")
    ModelCard(class_names=list("abcd"), image_size=32, backbone="TinyCNN", weights_origin="none",
              feature_layer=feature_layer_name(model)).save(tmp_path)
    loaded, card = load_model(tmp_path)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert np.allclose(model(x), loaded(x), atol=1e-6)
    assert loaded.get_layer(card.feature_layer).output.shape[-1] == 16


@pytest.mark.parametrize("breakage, message", [
    ("no_dir", "does not exist"), ("no_card", "No model card"), ("bad_card", "unreadable"),
    ("no_model", "is missing"), ("wrong_size", "does not match"),
])
def test_broken_model_folders_give_clear_errors(tmp_path, breakage, message):
    folder = tmp_path / "m"
    if breakage != "no_dir":
        folder.mkdir()
        model = build_model(4, 32, "TinyCNN", None)
        if breakage != "no_model":
            model.save(folder / "model.keras")
        size = 64 if breakage == "wrong_size" else 32
        ModelCard(class_names=list("abcd"), image_size=size, backbone="TinyCNN", weights_origin="none",
                  feature_layer="top_activation").save(folder)
        if breakage == "no_card":
            (folder / "model_card.json").unlink()
        if breakage == "bad_card":
            (folder / "model_card.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match=message):
        load_model(folder)


def test_mixed_precision_run_exports_a_float32_model(tiny_dataset, tmp_path):
    from core.training.loop import TrainConfig, train

    config = TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none", image_size=32, batch_size=8,
                         epochs_scratch=1, limit_per_class=3, precision="mixed_bfloat16")
    try:
        out = train(config, tmp_path / "run")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model, card = load_model(out)
    assert card.training["precision"] == "mixed_bfloat16"
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
