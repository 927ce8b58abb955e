"""The training loop: two-phase transfer learning or a from-scratch recipe, resumable, observable.

Every run writes a run folder: config.json, train.log, history.json, status.json (updated during
each epoch, polled by the app), checkpoints/ckpt-NNNNNN/ (last.keras with optimiser state,
best.weights.h5 by validation accuracy, state.json; published as one unit by a rename) and, at the
end, model/ with model.keras + model_card.json (published by a rename after the evaluation).

`train` runs named steps: open the run (config.json), start it (logging, cancel, seed, devices), prepare the
data (once: index, leakage check, splits, decoded scans), make the feeds, restore the progress, run the phases,
export. The steps share a `Run` (what stays fixed), a `RunData` and a `RunState` (the progress a checkpoint keeps).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.collections import PARTIAL_TUMOUR, balanced_by_group, normal_pool, tumour_collection
from core.data.discovery import DatasetIndex, LoadedImages, Sample, discover, limit_per_class, load_samples, make_splits
from core.data.leakage import LeakageReport, check_leakage
from core.errors import TrainingConfigError
from core.model.factory import build_model, feature_layer_name
from core.model.series_assessment import no_tumour_class
from core.training import lesion as les
from core.training import partial
from core.training import run_files as rf
from core.training.augment import batch_dataset
from core.training.cancel import Cancel, Cancelled, listen
from core.training.config import RESUME_OVERRIDES, Phase, TrainConfig, masks_dir, plan_phases, validate
from core.training.export import cancelled_untrained, export
from core.training.state import RunData, RunState, resumed_state

log = logging.getLogger("brainscan.train")


@dataclass
class Run:
    """What stays fixed while a run trains: its recipe and folder, the cancel flag and the devices."""

    config: TrainConfig
    run_dir: Path
    cancel: Cancel
    strategy: Any
    policy: str
    jit: bool
    rescheduled: bool


@dataclass
class Feeds:
    """The batches a run trains and validates on; `collection_val` (feed, no-tumour class) scores the tumour
    collection's validation groups apart."""

    train: Any
    validation: Any
    collection_val: tuple[Any, int] | None
    steps: int


def _set_trainable(model: Any, trainable: str) -> None:
    from keras import layers

    names = [layer.name for layer in model.layers]
    first_head = names.index(feature_layer_name(model)) + 1
    backbone = model.layers[1:first_head]
    if trainable == "all":
        for layer in model.layers:
            layer.trainable = True
        return
    for layer in backbone:
        layer.trainable = False
    if trainable.startswith("top"):
        for layer in backbone[-int(trainable[3:]):]:
            if not isinstance(layer, layers.BatchNormalization):
                layer.trainable = True
    for layer in model.layers[first_head:]:
        layer.trainable = True


def _optimizer(phase: Phase, config: TrainConfig, steps_per_epoch: int) -> Any:
    import keras

    if phase.schedule == "cosine":
        warmup = min(config.warmup_epochs * steps_per_epoch, max(phase.epochs * steps_per_epoch - 1, 0))
        decay_steps = max(phase.epochs * steps_per_epoch - warmup, 1)
        if warmup:
            lr: Any = keras.optimizers.schedules.CosineDecay(phase.lr * 0.1, decay_steps, alpha=0.01,
                                                            warmup_target=phase.lr, warmup_steps=warmup)
        else:
            lr = keras.optimizers.schedules.CosineDecay(phase.lr, decay_steps, alpha=0.01)
    else:
        lr = phase.lr
    if phase.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adamax(learning_rate=lr)


def _compile(model: Any, phase: Phase, config: TrainConfig, steps_per_epoch: int, jit: bool,
             optimizer: Any = None) -> None:
    """Categorical cross-entropy; the set-valued loss of `core.training.partial` when partial labels are fed."""
    import keras

    if config.tumour_collection:
        loss, metrics = partial.compile_terms(config.label_smoothing)
    else:
        loss, metrics = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing), ["accuracy"]
    model.compile(optimizer=optimizer or _optimizer(phase, config, steps_per_epoch), loss=loss, metrics=metrics,
                  jit_compile=jit)


def _continue_cosine(model: Any, phase: Phase, config: TrainConfig, done_epochs: int, steps: int, jit: bool) -> None:
    """After a change of length: a fresh cosine from the current learning rate over the epochs left."""
    import keras

    current = float(np.asarray(model.optimizer.learning_rate))
    remaining = max((phase.epochs - done_epochs) * steps, 1)
    schedule = keras.optimizers.schedules.CosineDecay(current, remaining, alpha=min(0.01 * phase.lr / current, 1.0))
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    _compile(model, phase, config, steps, jit, optimizer)
    log.info("phase %s now %d epochs: cosine from lr %.2e over the %d epochs left", phase.name, phase.epochs,
             current, phase.epochs - done_epochs)


def make_dataset(images: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int,
                 training: bool, seed: int, augmentation: str = "robust",
                 lesion: tuple[np.ndarray, np.ndarray] | None = None, grid: int = 0, no_tumour: int = -1) -> Any:
    """The feed over in-memory uint8 scans (the cache): shuffled and augmented per image when training.

    Backend-agnostic (a keras.utils.PyDataset with NumPy/OpenCV augmentation), so the same recipe trains on
    TensorFlow or JAX, and seeded per image, so the same seed gives the same batches.
    """
    return batch_dataset(images, labels, num_classes, batch_size, augmentation if training else "none", seed,
                         shuffle=training, lesion=lesion, grid=grid, no_tumour=no_tumour)


def _devices() -> tuple[list, Any]:
    """(GPUs, distribution strategy): TensorFlow's MirroredStrategy over several GPUs; elsewhere a no-op scope."""
    import contextlib
    import types

    import keras

    if keras.backend.backend() != "tensorflow":
        import jax

        single = types.SimpleNamespace(num_replicas_in_sync=1, scope=contextlib.nullcontext)
        return [d for d in jax.devices() if d.platform == "gpu"], single
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return gpus, (tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy())


def _warm_start(model: Any, model_dir: str) -> None:
    """Start from another model folder's weights (same architecture; checked by `validate`)."""
    from core.model.factory import load_model

    source, _ = load_model(model_dir)
    model.set_weights(source.get_weights())
    log.info("warm start from %s", model_dir)


def _precision_policy(config: TrainConfig, gpus: list) -> str:
    if config.precision != "auto":
        return config.precision
    return "mixed_float16" if gpus else "float32"


def _setup_logging(run_dir: Path) -> None:
    log.setLevel(logging.INFO)
    log.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.FileHandler(run_dir / rf.LOG_FILE), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.propagate = False


def _add_collections(config: TrainConfig, splits: dict[str, list], no_tumour: int) -> None:
    """Add the tumour collection (partial labels; its validation groups to validation) and the normal pool
    (training only) to `splits`, each training image `*_repeat` times per epoch."""
    if config.tumour_collection:
        if no_tumour < 0:
            raise TrainingConfigError("--tumour-collection needs a data set with a no-tumour class (e.g. notumor).")
        part = tumour_collection(config.tumour_collection, config.val_fraction, config.seed)
        train = part.train
        draws = len(train) * config.tumour_repeat
        splits["train"] = splits["train"] + (balanced_by_group(part.train_groups, draws)
                                             if config.tumour_balance == "group" else train * config.tumour_repeat)
        splits["validation"] = splits["validation"] + part.validation
        log.info("tumour collection %s: %d training images (%d draws per epoch, balanced by %s), %d validation "
                 "images, %d groups", config.tumour_collection, len(train), draws, config.tumour_balance,
                 len(part.validation), part.groups)
    if config.normal_pool:
        if no_tumour < 0:
            raise TrainingConfigError("--normal-pool needs a data set with a no-tumour class (e.g. notumor).")
        pool = normal_pool(config.normal_pool, no_tumour)
        splits["train"] = splits["train"] + pool * config.normal_repeat
        log.info("normal pool %s: %d training images (x%d)", config.normal_pool, len(pool), config.normal_repeat)


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False,
          epoch_overrides: dict[str, int] | None = None) -> Path:
    """Run (or resume) training; returns the exported model folder.

    On resume, `epoch_overrides` (keys from RESUME_OVERRIDES) lengthen or shorten the phases; a
    cosine phase whose length changes continues with a new cosine from its current learning rate.
    """
    run_dir = Path(run_dir)
    config, rescheduled = open_run(config, run_dir, resume, epoch_overrides)
    run = start(config, run_dir, rescheduled)
    try:
        data = prepare_data(config, run.cancel)
        feeds = make_feeds(run, data)
    except Cancelled:
        return cancelled_untrained(run_dir)
    state, checkpoint = restore(run_dir, resume, data)
    model = run_phases(run, state, feeds, checkpoint, len(data.index.class_names))
    if state.cancelled and rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR) is None:
        return cancelled_untrained(run_dir)
    return export(model, config, data, run_dir, state, run.policy)


def open_run(config: TrainConfig, run_dir: Path, resume: bool,
             epoch_overrides: dict[str, int] | None) -> tuple[TrainConfig, bool]:
    """The run's validated recipe and whether a phase's length changed: a new run's `config`, written as
    config.json (a folder that holds a run is refused), or on resume the saved one with `epoch_overrides`."""
    if not resume:
        validate(config)
        if (run_dir / rf.CONFIG_FILE).exists():
            raise TrainingConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or a new folder.")
        (run_dir / rf.CHECKPOINT_SUBDIR).mkdir(parents=True, exist_ok=True)
        rf.write_json(run_dir / rf.CONFIG_FILE, asdict(config))
        return config, False
    saved = rf.read_json(run_dir / rf.CONFIG_FILE)
    if saved is None:
        raise TrainingConfigError(f"{run_dir} is not a run folder (no {rf.CONFIG_FILE}); nothing to resume.")
    changes = {k: v for k, v in (epoch_overrides or {}).items() if k in RESUME_OVERRIDES and saved[k] != v}
    config = TrainConfig(**{**saved, **changes})
    validate(config)
    if changes:
        rf.write_json(run_dir / rf.CONFIG_FILE, asdict(config))
    return config, bool(changes)


def start(config: TrainConfig, run_dir: Path, rescheduled: bool) -> Run:
    """Log to train.log, mark the run loading, listen for a cancel, seed Keras and choose devices and precision."""
    (run_dir / rf.CANCEL_FILE).unlink(missing_ok=True)
    _setup_logging(run_dir)
    rf.update_status(run_dir, state="loading", pid=os.getpid(), error=None, started=time.time())
    cancel = listen(run_dir)

    import keras

    keras.utils.set_random_seed(config.seed)
    gpus, strategy = _devices()
    policy = _precision_policy(config, gpus)
    keras.mixed_precision.set_global_policy(policy)
    jit = bool(gpus)
    log.info("backend %s; devices: %d GPU(s); precision %s; replicas %d; XLA %s", keras.backend.backend(),
             len(gpus), policy, strategy.num_replicas_in_sync, jit)
    return Run(config, run_dir, cancel, strategy, policy, jit, rescheduled)


def prepare_data(config: TrainConfig, cancel: Cancel) -> RunData:
    """Index the data, check it for leakage once (the grouped protocol splits by its source groups; the export's
    calibration and evaluation reuse it), split it, add the collections and decode the training and validation
    scans. Raises Cancelled between steps when a cancel is requested."""
    index = discover(config.data)
    leakage = _leakage_check(index) if config.protocol == "grouped" else None
    splits = make_splits(index, config.protocol, config.val_fraction, config.seed,
                         leakage.groups if leakage else None)
    splits = {k: limit_per_class(v, config.limit_per_class) for k, v in splits.items()}
    normal = no_tumour_class(index.class_names)
    no_tumour = index.class_names.index(normal) if normal else -1
    _add_collections(config, splits, no_tumour)
    cancel.check()
    loaded = {}
    for part in ("train", "validation"):
        loaded[part] = _load(part, splits[part], config)
        cancel.check()
    return RunData(index, leakage, splits, no_tumour, loaded)


def _leakage_check(index: DatasetIndex) -> LeakageReport:
    t0 = time.time()
    report = check_leakage(index)
    log.info("leakage check: %d source groups; %d of %d test scans unseen (%.0fs)", report.summary()["n_groups"],
             len(report.unseen), len(report.test), time.time() - t0)
    return report


def _load(part: str, samples: list[Sample], config: TrainConfig) -> LoadedImages:
    t0 = time.time()
    loaded = load_samples(samples, config.image_size, crop=config.crop)
    log.info("loaded %s: %d images (%d skipped) in %.0fs", part, len(loaded.labels), len(loaded.skipped),
             time.time() - t0)
    for message in loaded.skipped:
        log.warning("skipped unreadable file: %s", message)
    return loaded


def make_feeds(run: Run, data: RunData) -> Feeds:
    """The training feed (augmented, with lesion targets when `mask_weight` > 0) and the validation feeds."""
    config = run.config
    batch = config.batch_size * run.strategy.num_replicas_in_sync
    lesion, grid = _lesion_targets(config, data, run.cancel) if config.mask_weight > 0 else (None, 0)
    partial.register()
    train, val, classes = data.loaded["train"], data.loaded["validation"], len(data.index.class_names)
    train_ds = make_dataset(train.images, train.labels, classes, batch, True, config.seed, config.augment, lesion,
                            grid, data.no_tumour)
    val_ds = make_dataset(val.images, val.labels, classes, batch, False, config.seed, grid=grid,
                          no_tumour=data.no_tumour)
    held = val.labels == PARTIAL_TUMOUR
    collection_val = (make_dataset(val.images[held], val.labels[held], classes, batch, False, config.seed,
                                   grid=grid, no_tumour=data.no_tumour), data.no_tumour) if held.any() else None
    return Feeds(train_ds, val_ds, collection_val, int(np.ceil(len(train.labels) / batch)))


def _lesion_targets(config: TrainConfig, data: RunData, cancel: Cancel) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """The training scans' lesion maps and the feature grid they are pooled to (lesion supervision)."""
    les.register()
    lesion = les.lesion_masks(data.loaded["train"].samples, config.image_size, config.crop, masks_dir(config),
                              data.no_tumour)
    grid = les.feature_grid(build_model(len(data.index.class_names), config.image_size, config.backbone, None))
    log.info("lesion supervision (weight %g): %d of %d training scans with a known lesion map (%d tumour "
             "masks), on a %dx%d grid", config.mask_weight, int(lesion[1].sum()), len(lesion[1]),
             int((lesion[0].reshape(len(lesion[0]), -1).max(axis=1) > 0).sum()), grid, grid)
    cancel.check()
    return lesion, grid


def restore(run_dir: Path, resume: bool, data: RunData) -> tuple[RunState, Path | None]:
    """The progress to continue from, and the checkpoint that holds it (None for a fresh start): on resume the
    latest checkpoint's state, with history.json cut back to its epoch."""
    checkpoint = rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR) if resume else None
    saved = rf.read_json(checkpoint / rf.CHECKPOINT_STATE) if checkpoint else None
    if saved is None:
        state, checkpoint = RunState(), None
    else:
        state = resumed_state(saved, checkpoint / rf.CHECKPOINT_STATE)
        log.info("resuming at phase %d epoch %d (best val_accuracy %.4f)", state.phase_index, state.epoch,
                 state.best_val_accuracy)
        history = rf.read_json(run_dir / rf.HISTORY_FILE, [])
        rf.write_json(run_dir / rf.HISTORY_FILE, [r for r in history if r["global_epoch"] <= state.global_epoch])
    state.started, state.cancelled = time.time(), False
    state.train_images = len(data.loaded["train"].labels)
    state.validation_images = len(data.loaded["validation"].labels)
    return state, checkpoint


def run_phases(run: Run, state: RunState, feeds: Feeds, checkpoint: Path | None, num_classes: int) -> Any:
    """Train the phases from where `state` stands (the model from `checkpoint` when resuming); stops after a
    cancel. Returns the trained model."""
    import keras

    phases = plan_phases(run.config)
    feeds.train.set_epoch(state.global_epoch)
    model = None
    with run.strategy.scope():
        for phase_index in range(state.phase_index, len(phases)):
            phase = phases[phase_index]
            if phase_index != state.phase_index:
                state.phase_index, state.epoch = phase_index, 0
            if checkpoint is not None and model is None:
                model = keras.saving.load_model(checkpoint / rf.CHECKPOINT_MODEL)
                if state.epoch >= phase.epochs:
                    continue
                if run.rescheduled and phase.schedule == "cosine":
                    _continue_cosine(model, phase, run.config, state.epoch, feeds.steps, run.jit)
            else:
                model = _model_for_phase(model, phase, run, num_classes, feeds.steps)
            _fit_phase(model, phases, state, run, feeds)
            if state.cancelled:
                break
    return model


def _model_for_phase(model: Any, phase: Phase, run: Run, num_classes: int, steps: int) -> Any:
    """The model to train in `phase`: built first (warm-started, with the lesion head when asked), then its
    trainable layers set and compiled with the phase's optimiser."""
    config = run.config
    if model is None:
        model = build_model(num_classes, config.image_size, config.backbone, config.weights)
        if config.init_from:
            _warm_start(model, config.init_from)
        if config.mask_weight > 0:
            model = les.with_lesion_head(model, config.mask_weight)
    _set_trainable(model, phase.trainable)
    _compile(model, phase, config, steps, run.jit)
    return model


def _fit_phase(model: Any, phases: list[Phase], state: RunState, run: Run, feeds: Feeds) -> None:
    """Fit the phase `state.phase_index` from `state.epoch`, then save a checkpoint of where it ended."""
    import keras

    from core.training import monitor

    phase, config = phases[state.phase_index], run.config
    log.info("phase %s: %d epochs, lr %.1e, trainable=%s, %s/%s; %d train / %d val images",
             phase.name, phase.epochs, phase.lr, phase.trainable, phase.optimizer, phase.schedule,
             state.train_images, state.validation_images)
    callbacks = [monitor.RunMonitor(run.run_dir, state.phase_index, phases, state, run.cancel, feeds.steps,
                                    feeds.collection_val),
                 keras.callbacks.EarlyStopping("val_accuracy", patience=config.patience, mode="max")]
    if phase.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=2, min_lr=1e-7))
    try:
        model.fit(feeds.train, validation_data=feeds.validation, initial_epoch=state.epoch, epochs=phase.epochs,
                  callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 0)
    except Cancelled:
        pass
    state.elapsed = time.time() - state.started
    if not state.cancelled:
        state.epoch = phase.epochs
    rf.save_checkpoint(run.run_dir / rf.CHECKPOINT_SUBDIR, state.to_json())
