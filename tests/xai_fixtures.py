"""Hand-built tiny Keras models with known answers, for explainer and XAI-metric tests.

`region_model`: its output depends only on the pixels of one square REGION (a crop, zero-padded
back: the last 4-D feature map is zero outside it), so a faithful explanation must put its mass
there. `region_image`: a bright blob inside REGION plus an equally bright distractor outside.
`no_pool_model`: feature map at input resolution, so our Score-CAM and tf-keras-vis' need no
upsampling and must agree.
"""
from __future__ import annotations

import numpy as np
import pytest

SIZE = 32
REGION = (slice(4, 14), slice(4, 14))


def region_mask(size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[REGION] = True
    return mask


def _blob(image: np.ndarray, cy: float, cx: float, radius: float, value: float) -> None:
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = value


def region_image(size: int = SIZE, blob: bool = True, seed: int = 0) -> np.ndarray:
    """Float32 (S, S, 3) 0-255 grey scan: noise, a blob in REGION (optional) and a distractor."""
    rng = np.random.default_rng(seed)
    gray = np.clip(rng.normal(70, 10, (size, size)), 0, 255)
    if blob:
        _blob(gray, 9, 9, 3.5, 230)
    _blob(gray, 23, 23, 3.5, 230)
    return np.repeat(gray[:, :, None], 3, axis=2).astype(np.float32)


def region_model(size: int = SIZE):
    """2-class model: P(class 0) rises steeply with the brightness inside REGION, nothing else counts."""
    import keras
    from keras import layers

    rows, cols = REGION
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv",
                      kernel_initializer=keras.initializers.RandomUniform(0.0, 2.0 / 27, seed=0))(x)
    x = layers.Cropping2D(((rows.start, size - rows.stop), (cols.start, size - cols.stop)))(x)
    x = layers.ZeroPadding2D(((rows.start, size - rows.stop), (cols.start, size - cols.stop)), name="region")(x)
    pooled = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(2, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, outputs, name="region_model")
    probe = keras.Model(inputs, pooled)
    with_blob = float(np.asarray(probe(region_image(size)[None])).sum())
    without = float(np.asarray(probe(region_image(size, blob=False)[None])).sum())
    gain = 8.0 / (with_blob - without)
    kernel = np.tile(np.array([[gain / 2, -gain / 2]], np.float32), (4, 1))
    middle = (with_blob + without) / 2 * gain / 2
    model.get_layer("predictions").set_weights([kernel, np.array([-middle, middle], np.float32)])
    return model


def no_pool_model(size: int = SIZE, seed: int = 0):
    """A 4-class conv net without pooling and with a peaked softmax (feature map = input size)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="feat")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(0, 20))(x)
    return keras.Model(inputs, outputs, name="no_pool")


@pytest.fixture(scope="session")
def model():
    """The region model (import this fixture into a test module)."""
    return region_model()


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    """The region image with its blob in REGION."""
    return region_image()
