"""Model-randomisation sanity check (Adebayo et al. 2018).

A copy of the model has its head and its top backbone layers re-initialised (seeded: kernels
He-normal, biases/shifts 0, scales/variances 1). If an explanation method depends on what the
model learned, its map on the randomised copy should differ: the Spearman rank correlation
between the two maps (absolute values, as in the paper) should be low. Lower is better.
"""
from __future__ import annotations

from typing import Any

import numpy as np

TOP_BACKBONE_LAYERS = 8
ONES = ("gamma", "moving_variance", "scale")


def randomised_copy(model: Any, seed: int = 0, top_backbone_layers: int = TOP_BACKBONE_LAYERS) -> Any:
    """A clone with the head and the last `top_backbone_layers` weighted backbone layers re-initialised."""
    import keras

    from core.model.factory import feature_layer_name

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    names = [layer.name for layer in clone.layers]
    cut = names.index(feature_layer_name(clone))
    weighted_backbone = [layer for layer in clone.layers[:cut + 1] if layer.weights]
    targets = weighted_backbone[-top_backbone_layers:] + [layer for layer in clone.layers[cut + 1:] if layer.weights]
    rng = np.random.default_rng(seed)
    for layer in targets:
        fresh = []
        for variable in layer.weights:
            shape = tuple(variable.shape)
            name = variable.path.split("/")[-1]
            if len(shape) > 1:
                fan_in = int(np.prod(shape[:-1])) if len(shape) != 4 or shape[-1] != 1 else int(np.prod(shape[:2]))
                fresh.append(rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape).astype(np.float32))
            elif any(key in name for key in ONES):
                fresh.append(np.ones(shape, np.float32))
            else:
                fresh.append(np.zeros(shape, np.float32))
        layer.set_weights(fresh)
    return clone


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of |a| and |b| (ranks with ties averaged); NaN if either is constant."""
    from scipy.stats import rankdata

    from core.xai.metrics.faithfulness.correlation import pearson

    return pearson(rankdata(np.abs(a).ravel()), rankdata(np.abs(b).ravel()))
