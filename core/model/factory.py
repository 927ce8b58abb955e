"""The model factory: EfficientNet backbone + Dense(256, ReLU) + Dropout(0.45) + Dense(softmax).

The backbone is built on the outer model's own input tensor, so the graph is flat: the last
convolutional feature map is a layer of the saved model itself, reachable without rebuilding
(nested backbones break Score-CAM/Grad-CAM in Keras).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ModelNotFoundError, TrainingConfigError
from core.model.card import MODEL_FILE, ModelCard, load_card
from core.model.engine_check import select_engine
from core.settings import settings

BACKBONES = ("EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "TinyCNN")
DEFAULT_BACKBONE = "EfficientNetB4"
HEAD_UNITS = 256
HEAD_DROPOUT = 0.45


def resolve_weights(weights: str | None) -> str | None:
    """'imagenet' (Keras download/cache), a local weights file path, or None/'none' (from scratch)."""
    if weights is None or str(weights).lower() in ("", "none", "scratch"):
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise TrainingConfigError(
            f"Weights file {path} does not exist. Use 'imagenet', 'none' or the path to a Keras "
            "EfficientNet 'notop' weights file (.h5 / .weights.h5).")
    return str(path)


def _tiny_backbone(inputs: Any) -> Any:
    """A small conv net for tests and quick demos; same 0-255 input contract as EfficientNet."""
    from keras import layers

    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i, filters in enumerate((8, 16)):
        x = layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv")(x)
        x = layers.Activation("relu", name=f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.Conv2D(16, 3, padding="same", name="top_conv")(x)
    return layers.Activation("relu", name="top_activation")(x)


def build_model(num_classes: int, image_size: int, backbone: str = DEFAULT_BACKBONE,
                weights: str | None = "imagenet", dropout: float = HEAD_DROPOUT,
                dense_units: int = HEAD_UNITS) -> Any:
    """Build the classifier; input is float 0-255 RGB of shape (image_size, image_size, 3)."""
    import keras
    from keras import layers

    if backbone not in BACKBONES:
        raise TrainingConfigError(f"Unknown backbone '{backbone}'. Choose one of: {', '.join(BACKBONES)}.")
    weights = resolve_weights(weights)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    if backbone == "TinyCNN":
        if weights is not None:
            raise TrainingConfigError("TinyCNN has no pretrained weights; use weights='none'.")
        features = _tiny_backbone(inputs)
    else:
        factory = getattr(keras.applications, backbone)
        try:
            base = factory(include_top=False, weights=weights, input_tensor=inputs)
        except (ValueError, OSError) as exc:
            raise TrainingConfigError(f"Cannot load {backbone} weights '{weights}': {exc}") from exc
        features = base.output
    x = layers.GlobalAveragePooling2D(name="avg_pool")(features)
    x = layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"brainscan_{backbone.lower()}")


def feature_layer_name(model: Any) -> str:
    """The last layer with a 4-D (N, H, W, C) output: the conv feature map explainers need."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is not None and len(shape) == 4 and not layer.name.startswith("image"):
            return layer.name
    raise ModelNotFoundError(f"Model '{model.name}' has no 4-D convolutional feature map.")


def head_layer_names(model: Any) -> list[str]:
    """Layers after the feature map (pooling and the dense head)."""
    names = [layer.name for layer in model.layers]
    return names[names.index(feature_layer_name(model)) + 1:]


def load_model(model_dir: str | Path) -> tuple[Any, ModelCard]:
    """Load a model folder (model.keras + model_card.json); clear error if anything is missing. The forward-pass
    engine is chosen and checked here (`core.model.engine_check.select_engine`, the BRAINSCAN_ENGINE setting)."""
    import keras

    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise ModelNotFoundError(f"Model folder {model_dir} does not exist.")
    card = load_card(model_dir)
    path = model_dir / (card.model_file or MODEL_FILE)
    if not path.is_file():
        raise ModelNotFoundError(f"Model file {path} is missing (the model card names '{card.model_file}').")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for corrupt or incompatible archives
        raise ModelNotFoundError(f"Cannot load model {path}: {exc}") from exc
    input_size = model.input_shape[1]
    if input_size != card.image_size or model.output_shape[-1] != len(card.class_names):
        raise ModelNotFoundError(
            f"Model {path} (input {model.input_shape}, output {model.output_shape}) does not match its card "
            f"(image_size {card.image_size}, {len(card.class_names)} classes).")
    select_engine(model, card, path)
    return model, card


def default_model_dir() -> Path:
    """BRAINSCAN_MODEL if set, else the bundled model in assets/models/default."""
    return settings().model or Path(__file__).resolve().parents[2] / "assets" / "models" / "default"
