"""The one inference path: every consumer (classification, evaluation, explainers, XAI metrics, image
selection) gets probabilities from `predict_proba`, which runs the model's forward call in batches: the engine
`core.model.factory.load_model` attached (OpenVINO, see `core.model.engine`) or the traced TensorFlow call.

Also the input check for a preprocessed image, and `classify`, the one function that turns a file into the
`core.model.assessment.Assessment` shown by the app, the report and the CLI.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.io.images import preprocess
from core.io.scan import Scan, decode_scan
from core.model import engine
from core.model.assessment import Assessment
from core.model.card import ModelCard
from core.model.gate import Refusal, check_pixels, check_scan
from core.model.gate.scores import image_statistics
from core.model.trust import Trust

PREDICT_BATCH = 64

_FORWARD: "weakref.WeakKeyDictionary[Any, Callable]" = weakref.WeakKeyDictionary()


def _forward(model: Any) -> Callable:
    """The model's inference call traced once for any batch size (eager Keras calls are ~10x slower on CPU).

    Cached per model in a WeakKeyDictionary whose value holds only a weak reference to the model: a
    closure over the model itself would keep the key alive, and an evicted model would never be freed."""
    fn = _FORWARD.get(model)
    if fn is None:
        import keras

        if keras.backend.backend() != "tensorflow":
            return model.predict_on_batch  # compiled by the backend (jit) on first use
        import tensorflow as tf

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = tf.function(weak_call(model), input_signature=[spec])
        _FORWARD[model] = fn
    return fn


def weak_call(model: Any) -> Callable:
    """`model(x, training=False)` through a weak reference (for functions cached per model)."""
    ref = weakref.ref(model)

    def call(x: Any) -> Any:
        target = ref()
        if target is None:  # only reachable if a cached function outlived its model: a bug, not user input
            raise RuntimeError("the model of this cached function has been freed")
        return target(x, training=False)

    return call


def forward(model: Any, batch: np.ndarray) -> np.ndarray:
    """One inference call on a batch (any Keras model: classifier or feature extractor): the model's attached
    engine (`core.model.engine`) when it has one, else the traced TensorFlow call."""
    attached = engine.runner(model)
    if attached is not None:
        return attached.run(batch)[0]
    return np.asarray(_forward(model)(np.asarray(batch, np.float32)))


def predict_proba(model: Any, images: np.ndarray, batch_size: int = PREDICT_BATCH,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Class probabilities (N, C) float64 for preprocessed images (N, S, S, 3) or one image (S, S, 3)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    out = []
    for start in range(0, len(images), batch_size):
        out.append(forward(model, images[start:start + batch_size]).astype(np.float64))
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    if not out:
        return np.zeros((0, model.output_shape[-1]))
    return np.concatenate(out)


_PROBES: "weakref.WeakKeyDictionary[Any, tuple[Any, list[str]]]" = weakref.WeakKeyDictionary()


def _last_dense(model: Any) -> Any:
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Dense):
            return layer
    raise ExplainError(f"Model '{model.name}' has no Dense output layer to read logits from.")


def _stage_layers(model: Any) -> list[Any]:
    """The last layer of each spatial resolution of the backbone (its stage outputs), shallow to deep;
    layers at the input's own resolution (rescaling, normalisation) are left out."""
    size = model.input_shape[1]
    last: dict[int, Any] = {}
    for layer in model.layers:
        shape = getattr(getattr(layer, "output", None), "shape", None)
        if shape is not None and len(shape) == 4 and shape[1] is not None and shape[1] < size:
            last[int(shape[1])] = layer
    return [last[k] for k in sorted(last, reverse=True)]


def _probe(model: Any) -> tuple[Any, list[str]]:
    """A Keras model sharing the classifier's weights that returns, in one forward pass, its probabilities, the
    input of its last Dense layer and each backbone stage's pooled output (built once per model)."""
    cached = _PROBES.get(model)
    if cached is None:
        import keras

        stages = _stage_layers(model)
        outputs = [model.output, _last_dense(model).input]
        outputs += [keras.ops.mean(layer.output, axis=(1, 2)) for layer in stages]
        names = ["probabilities", "penultimate"] + [f"stage{i}" for i in range(len(stages))]
        cached = (keras.Model(model.input, outputs), names)
        _PROBES[model] = cached
    return cached


def predict_with_features(model: Any, images: np.ndarray,
                          batch_size: int = PREDICT_BATCH) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`predict_proba` plus what the input gate and calibration need, from the same single forward pass:
    probabilities (N, C) float64 and features {"logits", "penultimate", "stage0".."stageK"} (float64), plus the
    cheap image statistics of the input gate ("pixels", see `core.model.gate.scores.image_statistics`).

    The probabilities are the model's own output layer (a test checks them against `predict_proba`); logits are
    recomputed from the last Dense layer's input and weights (the saved model applies softmax inside that layer).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    probe, names = _probe(model)
    attached = engine.runner(model)
    call = attached.run if attached is not None else _forward(probe)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, len(images), batch_size):
        outs = call(np.asarray(images[start:start + batch_size], np.float32))
        for n, out in zip(names, outs):
            parts[n].append(np.asarray(out, np.float64))
    arrays = {n: np.concatenate(v) if v else np.zeros((0, 0)) for n, v in parts.items()}
    proba = arrays.pop("probabilities")
    dense = _last_dense(model)
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights()[:2])
    arrays["logits"] = arrays["penultimate"] @ kernel + bias
    arrays["pixels"] = image_statistics(images)
    return proba, arrays


def check_image(model: Any, image: np.ndarray) -> np.ndarray:
    """A float32 copy of a preprocessed (S, S, 3) image matching the model input, or ExplainError."""
    image = np.asarray(image)
    expected = tuple(model.input_shape[1:])
    if image.shape != expected:
        raise ExplainError(f"expected one preprocessed image of shape {expected} (use load_for_model), "
                           f"got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ExplainError("the image contains NaN or infinite values")
    return image.astype(np.float32, copy=True)


def _refused(model: Any, card: ModelCard, name: str, refusal: Refusal, decoded: bool) -> Assessment:
    return Assessment(name, tuple(card.class_names), refusal=refusal.reason, refusal_layer=refusal.layer,
                      decoded=decoded, model=card.name, engine=engine.engine_name(model))


def classify(model: Any, card: ModelCard, source: str | Path | bytes | Scan, name: str | None = None,
             trust: Trust | None = None) -> Assessment:
    """Gate, preprocess and classify one scan: the one function that turns a file into the `Assessment` every
    surface shows. `source` is a `core.io.scan.Scan` decoded once by the caller, or a path or bytes decoded here
    (under `name`).

    The gate runs cheapest first: the DICOM Modality (a CT whose pixels cannot be decoded is still refused, not an
    error), pixel rules, then - when the folder is fitted (`trust`) - the learned score from the same forward pass
    that classifies. A refusal is an answer (no class, no set), not an error; undecodable files that the gate does
    not refuse raise ImageDecodeError.
    """
    scan = source if isinstance(source, Scan) else decode_scan(source, name)
    refusal = check_scan(scan)
    if scan.pixels is None and refusal is not None:
        return _refused(model, card, scan.name, refusal, decoded=False)
    return assess_images(model, card, [scan.rgb], [scan.name], trust, [refusal])[0]


def assess_images(model: Any, card: ModelCard, images: list[np.ndarray], names: list[str],
                  trust: Trust | None = None, refusals: list[Refusal | None] | None = None) -> list[Assessment]:
    """Gate, classify (calibrated when `trust` is given) and build the prediction sets of decoded RGB images in
    one batched forward pass: `classify` for one file and a DICOM series' slices go through here alike.

    `refusals` are the earlier gate layers' answers (metadata, or pixel rules computed with the file's NaN
    fraction); when absent the pixel rules run here. A refused scan's assessment carries no probabilities."""
    if refusals is None:
        refusals = [check_pixels(rgb) for rgb in images]
    refusals = list(refusals)
    batch = np.stack([preprocess(rgb, card.image_size, card.crop) for rgb in images])
    classes = tuple(card.class_names)
    if trust is None:
        raw = predict_proba(model, batch)
        calibrated, ood, sets = raw, [None] * len(names), None
    else:
        raw, features = predict_with_features(model, batch)
        ood = [float(v) for v in trust.ood_scores(features)]
        calibrated = trust.calibrate(features["logits"])
        sets = trust.sets(calibrated)
    out = []
    for i, name in enumerate(names):
        refusal = refusals[i]
        if refusal is None and trust is not None and ood[i] > trust.config.gate_threshold:
            refusal = Refusal("learned", LEARNED_REFUSAL)
        members = None if sets is None or refusal else tuple(c for c, keep in zip(classes, sets[i]) if keep)
        out.append(Assessment(name, classes, tuple(float(p) for p in calibrated[i]), tuple(float(p) for p in raw[i]),
                              calibrated_model=trust is not None, prediction_set=members,
                              refusal=refusal.reason if refusal else None,
                              refusal_layer=refusal.layer if refusal else None, ood_score=ood[i], model=card.name,
                              engine=engine.engine_name(model)))
    return out


LEARNED_REFUSAL = ("This does not look like a brain MRI slice of the kind the model was trained on "
                   "(its features are unlike every training scan's); no class is given.")
