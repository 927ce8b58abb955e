"""Choose a loaded classifier's inference engine (the `BRAINSCAN_ENGINE` setting) and check it at load time.

An OpenVINO runner is used only if, on a small fixed probe batch (the bundled sample scans, their mirror images, a
black and a half-masked scan), it gives the same class as TensorFlow on every image and probabilities - raw and,
when the folder is calibrated, calibrated - within `TOLERANCE` of TensorFlow's. Otherwise the next candidate is
tried (bf16, then f32) and finally TensorFlow stays, with the reason logged. A runtime that cannot be used at all
(conversion or compilation fails) is also a logged fallback, never a failed load.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.io.images import load_for_model
from core.model import engine
from core.model.card import ModelCard
from core.model.inference import _probe, predict_with_features
from core.model.trust import load_trust
from core.settings import REPO, settings

LOG = logging.getLogger(__name__)

TOLERANCE = 0.005  # 0.5 percentage points: the most a shown probability may move
SAMPLES = REPO / "assets" / "samples"


@dataclass(frozen=True)
class EngineChoice:
    """The engine a model got at load time and why (logged; `engine.engine_name(model)` is what records carry)."""

    engine: str
    reason: str
    max_abs_dp: float | None = None
    convert_seconds: float = 0.0


def probe_batch(card: ModelCard) -> np.ndarray:
    """The fixed check batch: the sample scans, their mirrors, a black scan and a half-masked sample (float32)."""
    scans = [load_for_model(path, card.image_size, crop=card.crop) for path in sorted(SAMPLES.glob("*.jpg"))]
    scans = np.stack(scans).astype(np.float32) if scans else np.zeros((0, card.image_size, card.image_size, 3))
    extra = [np.zeros((1, card.image_size, card.image_size, 3), np.float32)]
    if len(scans):
        half = scans[:1].copy()
        half[:, :, card.image_size // 2:] = 0
        extra.append(half)
    return np.concatenate([scans, scans[:, :, ::-1], *extra]).astype(np.float32)


def _shown(proba: np.ndarray, features: dict[str, np.ndarray], trust: Any) -> list[np.ndarray]:
    return [proba] if trust is None else [proba, trust.calibrate(features["logits"])]


def disagreement(model: Any, batch: np.ndarray, trust: Any, candidate: engine.OpenVinoRunner) -> tuple[str, float]:
    """Why `candidate` may not replace TensorFlow on `batch` ("" when it may) and the largest probability change."""
    engine.attach(model, None)
    reference = _shown(*predict_with_features(model, batch), trust)
    engine.attach(model, candidate)
    try:
        trial = _shown(*predict_with_features(model, batch), trust)
    finally:
        engine.attach(model, None)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(reference, trial))
    if any((a.argmax(1) != b.argmax(1)).any() for a, b in zip(reference, trial)):
        return "it changes the predicted class of a probe scan", worst
    if worst > TOLERANCE:
        return f"a probability moves by {100 * worst:.2f} points (> {100 * TOLERANCE:.1f})", worst
    return "", worst


def select_engine(model: Any, card: ModelCard, model_path: Path, choice: str | None = None,
                  cache_dir: Path | None = None) -> EngineChoice:
    """Attach the best engine that passes the load check to `model` and return what was chosen and why."""
    current = settings()
    choice = choice or current.engine
    cache_dir = cache_dir or current.engine_cache
    engine.attach(model, None)
    names = engine.candidates(choice)
    if not names:
        return EngineChoice(engine.TENSORFLOW, f"{engine.TENSORFLOW} requested")
    batch, trust = probe_batch(card), load_trust(model_path.parent, card.class_names)
    key, reasons = engine.file_sha256(model_path), []
    for name in names:
        try:
            candidate = engine.compile_runner(_probe(model)[0], key, cache_dir, name)
            reason, worst = disagreement(model, batch, trust, candidate)
        except Exception as exc:  # noqa: BLE001 - any runtime failure means "use TensorFlow", logged below
            reason, worst = f"it could not be used ({type(exc).__name__}: {exc})", None
        if not reason:
            engine.attach(model, candidate)
            return EngineChoice(name, "passed the load check", worst, candidate.convert_seconds)
        reasons.append(f"{name}: {reason}")
    message = "; ".join(reasons)
    LOG.warning("inference falls back to TensorFlow for %s: %s", model_path, message)
    return EngineChoice(engine.TENSORFLOW, f"fallback: {message}")
