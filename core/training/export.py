"""The end of a run: the best checkpoint exported as a float32 model folder with its card, evaluated first when
the run finished (a cancelled run exports its best checkpoint unevaluated).

The exported model is a fresh, uncompiled float32 build holding the trained weights: no optimiser state (a third
of the file otherwise) and no mixed-precision policy in the saved layers. It is written with its card to a staging
folder and published as model/ by one rename, so a kill at any moment leaves either no model/ or a complete one
(the status says which run finished; the picker lists only those).
"""
from __future__ import annotations

import importlib
import logging
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.data.discovery import Sample, fingerprint
from core.data.leakage import LeakageReport
from core.model.card import DEFAULT_PREPROCESSING, HEAD_CROP, MODEL_FILE, ModelCard
from core.model.factory import build_model, feature_layer_name, resolve_weights
from core.training import lesion as les
from core.training import run_files as rf
from core.training.config import TrainConfig, plan_phases, reproduce_command
from core.training.state import RunData, RunState

log = logging.getLogger("brainscan.train")


def export(model: Any, config: TrainConfig, data: RunData, run_dir: Path, state: RunState, policy: str) -> Path:
    """Export the best checkpoint as model/ with its card (and its evaluation and trust files if the run
    finished); returns the model folder."""
    model = _best_float32_model(model, config, len(data.index.class_names), run_dir)
    card = _card(model, config, data, run_dir, state, policy)
    out = run_dir / rf.MODEL_SUBDIR
    staging = rf.staging_dir(out)
    if not state.cancelled:
        _evaluate(model, card, config, data, run_dir, state, staging)
    model.save(staging / MODEL_FILE)
    rf.crash_point("export")
    card.save(staging)
    rf.publish_dir(staging, out)
    if state.cancelled:
        rf.update_status(run_dir, state="cancelled", model_dir=str(out))
        log.info("cancelled; best checkpoint exported to %s (not evaluated)", out)
        return out
    rf.update_status(run_dir, state="finished", model_dir=str(out), eta_seconds=0,
                     test_accuracy=card.evaluation["test"]["accuracy"])
    log.info("finished: test accuracy %.4f; model in %s", card.evaluation["test"]["accuracy"], out)
    return out


def cancelled_untrained(run_dir: Path) -> Path:
    """A cancel while the data was loading or during the first epoch: no epoch was completed, so there is no
    checkpoint to export (an earlier export and checkpoints of a resumed run stay; a resume starts from them)."""
    out = run_dir / rf.MODEL_SUBDIR
    rf.update_status(run_dir, state="cancelled", model_dir=str(out) if out.is_dir() else None)
    log.info("cancelled before an epoch was completed; nothing exported")
    return out


def _best_float32_model(model: Any, config: TrainConfig, num_classes: int, run_dir: Path) -> Any:
    """A fresh float32 classifier holding the best checkpoint's weights (a lesion head, if any, is dropped)."""
    import keras

    ckpt = rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR)
    if ckpt is not None and (ckpt / rf.BEST_WEIGHTS).exists():
        model.load_weights(ckpt / rf.BEST_WEIGHTS)
    keras.mixed_precision.set_global_policy("float32")
    exported = build_model(num_classes, config.image_size, config.backbone, None)
    les.copy_classifier_weights(model, exported)
    return exported


def _card(model: Any, config: TrainConfig, data: RunData, run_dir: Path, state: RunState, policy: str) -> ModelCard:
    """The model card: classes, input, the training record and the notes a reader needs about the recipe."""
    card = ModelCard(
        class_names=data.index.class_names, image_size=config.image_size, backbone=config.backbone,
        preprocessing={**DEFAULT_PREPROCESSING, "crop": config.crop,
                       **({"crop_description": HEAD_CROP} if config.crop == "head" else {})},
        weights_origin=str(config.weights or "none"), feature_layer=feature_layer_name(model),
        name=config.name or run_dir.name, training=_training_record(config, data.splits, state, policy))
    card.notes.extend(_recipe_notes(config))
    return card


def _training_record(config: TrainConfig, splits: dict[str, list[Sample]], state: RunState,
                     policy: str) -> dict[str, Any]:
    """The card's `training` part: the recipe, how the run went, the machine and the data's fingerprints."""
    return {
        "config": asdict(config), "reproduce_command": reproduce_command(config),
        "phases": [asdict(p) for p in plan_phases(config)],
        "epochs_run": state.global_epoch, "best_epoch": state.best_epoch,
        "best_val_accuracy": state.best_val_accuracy, "wall_seconds": round(state.total_seconds(), 1),
        "precision": policy, "cancelled": state.cancelled,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version(), **_frameworks()},
        "data_fingerprint": {k: fingerprint(v) for k, v in splits.items()},
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "seed": config.seed, "history_file": rf.HISTORY_FILE,
    }


def _recipe_notes(config: TrainConfig) -> list[str]:
    """The card's notes on what is unusual about the recipe (shown with the model in the app and the report)."""
    notes = []
    if resolve_weights(config.weights) is None:
        notes.append("Trained from scratch (no ImageNet weights).")
    if config.mask_weight > 0:
        notes.append(f"Trained with auxiliary lesion supervision (weight {config.mask_weight:g}): the Training "
                     "split's expert tumour masks as a per-cell target on the last feature map; the head was "
                     "dropped at export, so this model is a plain classifier.")
    if config.tumour_collection:
        notes.append(f"Trained with a tumour collection beside the 4-class data ({config.tumour_collection}, "
                     f"x{config.tumour_repeat}, balanced by {config.tumour_balance}): tumour slices of unknown type "
                     "with a partial label (loss on 1 - p(no tumour)); its validation groups count in val_accuracy "
                     "as right when called a tumour.")
    if config.normal_pool:
        notes.append(f"Trained with a normal pool ({config.normal_pool}, x{config.normal_repeat}) labelled "
                     "no tumour.")
    if config.init_from:
        notes.append(f"Warm-started from the weights of {config.init_from} (see that model's card for how it "
                     "was trained), then trained with this card's recipe.")
    return notes


def _evaluate(model: Any, card: ModelCard, config: TrainConfig, data: RunData, run_dir: Path, state: RunState,
              staging: Path) -> None:
    """Fit the trust layer into `staging` (published with the model) and evaluate the model into the card, both
    with the run's own leakage report."""
    from core.evaluation.evaluate import evaluate_loaded_model

    rf.update_status(run_dir, state="evaluating")
    log.info("evaluating the best checkpoint (epoch %d)", state.best_epoch)
    rf.crash_point("evaluation")
    leakage = data.leakage_report()
    trust = fit_trust_hook(model, card, config, staging, leakage)
    card.evaluation = evaluate_loaded_model(model, card, config.data, config.protocol, config.seed,
                                            config.val_fraction, per_class=config.limit_per_class, trust=trust,
                                            leakage=leakage)


def fit_trust_hook(model: Any, card: ModelCard, config: TrainConfig, model_dir: Path,
                   leakage: LeakageReport | None = None) -> Any:
    """Fit the input gate, temperature and conformal sets into a finished model folder (what
    `python -m core calibrate` does for an existing one); None for quick subset runs and tiny data sets."""
    from core.errors import CalibrationError
    from core.evaluation.trust_fit import fit_trust

    if config.limit_per_class:
        return None
    try:
        return fit_trust(model, card, config.data, model_dir, config.protocol, config.seed, config.val_fraction,
                         command=f"python -m core calibrate --data {config.data} --model {model_dir}",
                         leakage=leakage)
    except CalibrationError as exc:
        log.info("not calibrated: %s", exc)
        return None


def _frameworks() -> dict[str, str]:
    """Keras, its backend and the backend's version (recorded in the card: a model trained on either loads)."""
    import keras

    backend = keras.backend.backend()
    return {"keras": keras.__version__, "backend": backend,
            backend: getattr(importlib.import_module(backend), "__version__", "?")}
