"""Know when not to answer: the runtime side of the input gate, temperature calibration and conformal sets.

A model folder may hold `trust.json` (temperature, the chosen gate score and its threshold, the conformal
confidence, how each was fitted and measured) and `trust.npz` (the gate score's arrays and the conformal
calibration scores). `python -m core calibrate` and the end of training write them (`core.evaluation.trust_fit`);
a folder without them still classifies, says "not calibrated", and only the rule layers of the gate run.

Conformal prediction sets are class-conditional (Mondrian) split conformal computed by `crepes`
(`WrapClassifier.calibrate(..., class_cond=True)`), rebuilt at load time from the stored calibration set.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from core.errors import ModelNotFoundError
from core.io.atomic import atomic_write_text, atomic_write_with
from core.model.gate import scores as gate_scores

TRUST_FILE = "trust.json"
TRUST_ARRAYS = "trust.npz"
DEFAULT_CONFIDENCE = 0.95
NOT_CALIBRATED = "not calibrated: this model folder has no trust.json (run `python -m core calibrate`)"


@dataclass
class TrustConfig:
    """What `trust.json` holds (the arrays live in `trust.npz`)."""

    temperature: float
    gate_score: str
    gate_threshold: float
    confidence: float = DEFAULT_CONFIDENCE
    class_names: list[str] = field(default_factory=list)
    fitted: dict[str, Any] = field(default_factory=dict)   # data, seed, sizes, command, when
    report: dict[str, Any] = field(default_factory=dict)   # measurements made while fitting (selection, ECE ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Passthrough:
    """A fitted scikit-learn-style classifier whose input *is* its calibrated probabilities (crepes wraps it)."""

    def __init__(self, n_classes: int) -> None:
        self.classes_ = np.arange(n_classes)

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Passthrough:
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).argmax(axis=1)


def conformal_predictor(cal_proba: np.ndarray, cal_labels: np.ndarray, seed: int = 0) -> Any:
    """crepes' class-conditional (Mondrian) conformal classifier calibrated on calibrated probabilities
    (hinge non-conformity 1 - p(true class), categories = the true class)."""
    from crepes import WrapClassifier

    wrapped = WrapClassifier(_Passthrough(cal_proba.shape[1]))
    wrapped.fitted = True  # the learner is the identity on probabilities: nothing to fit
    wrapped.calibrate(np.asarray(cal_proba, np.float64), np.asarray(cal_labels), class_cond=True, seed=seed)
    return wrapped


def prediction_sets(predictor: Any, proba: np.ndarray, confidence: float) -> np.ndarray:
    """Boolean (N, C): class c is in a scan's set when its conformal p-value exceeds 1 - confidence
    (non-smoothed p-values: deterministic, coverage >= confidence per class)."""
    return np.asarray(predictor.predict_set(np.asarray(proba, np.float64), confidence=confidence, labels=False,
                                            smoothing=False), bool)


def calibrated_proba(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities softmax(logits / T) (Guo et al. 2017)."""
    return softmax(np.asarray(logits, np.float64) / temperature, axis=1)


@dataclass
class Trust:
    """A model folder's fitted gate, temperature and conformal predictor, ready to use."""

    config: TrustConfig
    gate_params: dict[str, np.ndarray]
    predictor: Any

    @property
    def score(self) -> gate_scores.Score:
        return gate_scores.get_score(self.config.gate_score)

    def ood_scores(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The learned gate score (higher = less like the training scans)."""
        return self.score.score(features, self.gate_params)

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        return calibrated_proba(logits, self.config.temperature)

    def sets(self, proba: np.ndarray, confidence: float | None = None) -> np.ndarray:
        return prediction_sets(self.predictor, proba, confidence or self.config.confidence)


def save_trust(model_dir: str | Path, config: TrustConfig, gate_params: dict[str, np.ndarray],
               cal_proba: np.ndarray, cal_labels: np.ndarray) -> Path:
    """Write trust.npz and trust.json into a model folder (each atomically: a crash leaves the old pair or the new)."""
    model_dir = Path(model_dir)
    arrays = {f"gate_{k}": np.asarray(v) for k, v in gate_params.items()}
    arrays.update(conformal_proba=np.asarray(cal_proba, np.float64), conformal_labels=np.asarray(cal_labels, np.int64))
    atomic_write_with(model_dir / TRUST_ARRAYS, lambda handle: np.savez_compressed(handle, **arrays))
    return atomic_write_text(model_dir / TRUST_FILE, json.dumps(config.to_dict(), indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def load_trust(model_dir: str | Path, class_names: list[str] | None = None) -> Trust | None:
    """The folder's fitted trust, or None when it has none (the caller says "not calibrated")."""
    model_dir = Path(model_dir)
    path, arrays_path = model_dir / TRUST_FILE, model_dir / TRUST_ARRAYS
    if not path.is_file():
        return None
    try:
        config = TrustConfig(**json.loads(path.read_text()))
        with np.load(arrays_path) as arrays:
            gate = {k[5:]: arrays[k] for k in arrays.files if k.startswith("gate_")}
            cal_proba, cal_labels = arrays["conformal_proba"], arrays["conformal_labels"]
    except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"The calibration files in {model_dir} are unreadable ({exc}); "
                                 "re-fit them with `python -m core calibrate`.") from exc
    if class_names is not None and config.class_names and list(config.class_names) != list(class_names):
        raise ModelNotFoundError(f"{path} was fitted for classes {config.class_names}, the model has {class_names}; "
                                 "re-fit it with `python -m core calibrate`.")
    gate_scores.get_score(config.gate_score)
    return Trust(config, gate, conformal_predictor(cal_proba, cal_labels))
