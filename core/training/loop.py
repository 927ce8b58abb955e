"""The training loop: two-phase transfer learning or a from-scratch recipe, resumable, observable.

Every run writes a run folder: config.json, train.log, history.json, status.json (updated during
each epoch, polled by the app), checkpoints/ckpt-NNNNNN/ (last.keras with optimiser state,
best.weights.h5 by validation accuracy, state.json; published as one unit by a rename) and, at the
end, model/ with model.keras + model_card.json (published by a rename after the evaluation).
"""
from __future__ import annotations

import logging
import os
import platform
import shlex
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data.audit import audit
from core.data.collections import PARTIAL_TUMOUR, normal_pool, tumour_collection
from core.data.discovery import PROTOCOLS, discover, fingerprint, limit_per_class, load_samples, make_splits
from core.data.masks import INDEX_FILE, MASKS_DIR_NAME, default_masks_dir
from core.errors import TrainingConfigError
from core.io.images import CROPS
from core.model.card import DEFAULT_PREPROCESSING, HEAD_CROP, MODEL_FILE, ModelCard, load_card
from core.model.factory import BACKBONES, DEFAULT_BACKBONE, build_model, feature_layer_name, resolve_weights
from core.model.series_assessment import no_tumour_class
from core.training import lesion as les
from core.training import partial
from core.training import run_files as rf
from core.training.augment import AUGMENTATIONS, batch_dataset

log = logging.getLogger("brainscan.train")


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as config.json and in the model card."""

    data: str
    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"
    image_size: int = 224
    batch_size: int = 32
    epochs_head: int = 12
    epochs_finetune: int = 8
    lr_head: float = 1e-3
    lr_finetune: float = 1e-5
    unfreeze_top: int = 30
    epochs_scratch: int = 40
    lr_scratch: float = 2e-3
    warmup_epochs: int = 2
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    patience: int = 8
    protocol: str = "grouped"
    val_fraction: float = 0.1
    seed: int = 42
    limit_per_class: int = 0
    precision: str = "auto"
    name: str = ""
    crop: str = "head"
    augment: str = "robust"
    init_from: str = ""
    mask_weight: float = 0.0
    masks: str = ""
    tumour_collection: str = ""
    tumour_repeat: int = 1
    normal_pool: str = ""
    normal_repeat: int = 1
    command: str = field(default_factory=lambda: command_line())


def command_line() -> str:
    """The command that started this process, as a user would type it."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("train", "__main__.py")):
        return shlex.join(["python", "-m", "train", *argv[1:]])
    return shlex.join(["python", *argv])


def reproduce_command(config: TrainConfig) -> str:
    """`python -m train` with every recipe option spelled out, so a later change of defaults cannot change
    what it trains (a run whose length was changed on resume also needs its recorded `command` sequence)."""
    options = {k: v for k, v in asdict(config).items() if k != "command" and v != ""}
    return shlex.join(["python", "-m", "train", *[f"--{k.replace('_', '-')}={v}" for k, v in options.items()]])


@dataclass
class Phase:
    """One stage of training: which layers learn, with which optimiser and learning rate."""

    name: str
    epochs: int
    lr: float
    trainable: str
    optimizer: str
    schedule: str


def plan_phases(config: TrainConfig) -> list[Phase]:
    """ImageNet/local weights: frozen-backbone head phase then top-N fine-tuning (Adamax, as specified).
    No weights: one phase with every layer trainable, AdamW with warm-up and cosine decay."""
    if resolve_weights(config.weights) is None:
        return [Phase("scratch", config.epochs_scratch, config.lr_scratch, "all", "adamw", "cosine")]
    phases = [Phase("head", config.epochs_head, config.lr_head, "head", "adamax", "plateau")]
    if config.epochs_finetune > 0:
        phases.append(Phase("finetune", config.epochs_finetune, config.lr_finetune,
                            f"top{config.unfreeze_top}", "adamax", "plateau"))
    return phases


def validate(config: TrainConfig) -> None:
    """Reject impossible options with a message before any work starts."""
    if config.backbone not in BACKBONES:
        raise TrainingConfigError(f"Unknown backbone '{config.backbone}'. Choose one of: {', '.join(BACKBONES)}.")
    if config.image_size < 32 or config.batch_size < 1:
        raise TrainingConfigError("image_size must be >= 32 and batch_size >= 1.")
    if config.precision not in ("auto", "float32", "mixed_float16", "mixed_bfloat16"):
        raise TrainingConfigError("precision must be auto, float32, mixed_float16 or mixed_bfloat16.")
    resolve_weights(config.weights)
    if sum(p.epochs for p in plan_phases(config)) < 1:
        raise TrainingConfigError("At least one epoch is needed.")
    for option, value, allowed in (("protocol", config.protocol, PROTOCOLS), ("crop", config.crop, CROPS),
                                   ("augment", config.augment, AUGMENTATIONS)):
        if value not in allowed:
            raise TrainingConfigError(f"{option} must be one of {', '.join(allowed)}; got {value!r}.")
    if config.mask_weight < 0:
        raise TrainingConfigError("mask_weight must be >= 0 (0 = no lesion supervision).")
    if config.mask_weight > 0 and masks_dir(config) is None:
        where = (f"--masks {config.masks} has no index.csv" if config.masks else
                 f"none beside {config.data} (a {MASKS_DIR_NAME} folder with index.csv)")
        raise TrainingConfigError(f"--mask-weight needs the expert masks: {where}; pass --masks DIR or set "
                                  "BRAINSCAN_MASKS.")
    for option, folder in (("tumour_collection", config.tumour_collection), ("normal_pool", config.normal_pool)):
        if folder and not (Path(folder) / "index.csv").is_file():
            raise TrainingConfigError(f"--{option.replace('_', '-')} {folder} is not a collection folder (no index.csv).")
    if config.tumour_repeat < 1 or config.normal_repeat < 1:
        raise TrainingConfigError("tumour_repeat and normal_repeat must be >= 1 (how often each image is seen per epoch).")
    if config.init_from:
        card = load_card(config.init_from)
        if (card.backbone, card.image_size) != (config.backbone, config.image_size):
            raise TrainingConfigError(
                f"--init-from {config.init_from} is a {card.backbone} at {card.image_size} px; this run builds a "
                f"{config.backbone} at {config.image_size} px (use the same backbone and image size).")


def masks_dir(config: TrainConfig) -> Path | None:
    """The masks folder lesion supervision reads: --masks, else the one found beside the data."""
    if config.masks:
        return Path(config.masks) if (Path(config.masks) / INDEX_FILE).is_file() else None
    return default_masks_dir(config.data)


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


class _Cancel:
    """Set by SIGTERM/SIGINT or by a CANCEL file in the run folder."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.flag = False

    def __call__(self, *_: Any) -> None:
        self.flag = True

    def requested(self) -> bool:
        return self.flag or (self.run_dir / rf.CANCEL_FILE).exists()


class _Cancelled(Exception):
    """Raised by the monitor at the first batch end after a cancel: leaves `model.fit` at once, so the rest of the
    epoch and its validation are skipped (Keras' stop_training would still validate the epoch). The unfinished
    epoch is discarded: the last checkpoint holds the last completed one, where a resume continues."""


def _monitor_class() -> Any:
    import keras

    class RunMonitor(keras.callbacks.Callback):
        """Writes status/history/checkpoints each epoch and progress during it; honours cancel."""

        def __init__(self, run_dir: Path, phase_index: int, phases: list[Phase], state: dict, cancel: _Cancel,
                     steps_per_epoch: int, collection_val: tuple[Any, int] | None = None):
            super().__init__()
            self.run_dir, self.phase_index, self.phases = run_dir, phase_index, phases
            self.state, self.cancel, self.steps = state, cancel, steps_per_epoch
            self.collection_val = collection_val
            self.last_write = 0.0
            self.epoch_start = self.train_end = time.time()

        def _remaining_epochs(self, epoch_in_phase: int) -> int:
            phase = self.phases[self.phase_index]
            later = sum(p.epochs for p in self.phases[self.phase_index + 1:])
            return phase.epochs - epoch_in_phase + later

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch_start = time.time()

        def _stop_if_cancelled(self, batch: int, part: str) -> None:
            if not self.cancel.requested():
                return
            self.model.stop_training = True
            self.state["cancelled"] = True
            rf.update_status(self.run_dir, state="cancelling")
            done = self.state["global_epoch"]
            log.info("cancel requested: stopped at %s batch %d of epoch %d; the epoch is discarded (not validated); "
                     "%s", part, batch + 1, done + 1,
                     f"the checkpoint of epoch {done} is kept" if done else "no epoch was completed")
            raise _Cancelled

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self._stop_if_cancelled(batch, "training")
            now = self.train_end = time.time()
            if now - self.last_write > 2.0:
                self.last_write = now
                seconds_per_batch = (now - self.epoch_start) / (batch + 1)
                rf.update_status(self.run_dir, state="running", batch=batch + 1, batches=self.steps,
                                 batch_metrics={k: float(v) for k, v in (logs or {}).items()},
                                 epoch_progress=(batch + 1) / self.steps)
                if self.state.get("epoch_seconds") is None:
                    remaining = self._remaining_epochs(self.state["epoch"]) * self.steps - (batch + 1)
                    rf.update_status(self.run_dir, eta_seconds=remaining * seconds_per_batch)

        def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
            self._stop_if_cancelled(batch, "validation")

        def _collection_recall(self, logs: dict[str, float]) -> dict[str, float]:
            """Tumour recall on the tumour collection's validation groups, and the accuracy on the rest of
            validation (val_accuracy counts a collection scan right when it is called a tumour)."""
            if self.collection_val is None or "val_accuracy" not in logs:
                return {}
            dataset, normal = self.collection_val
            probabilities = self.model.predict(dataset, verbose=0)
            recall = float(np.mean(np.argmax(probabilities, axis=1) != normal))
            n, total = len(probabilities), self.state["validation_images"]
            rest = (logs["val_accuracy"] * total - recall * n) / max(total - n, 1)
            return {"val_collection_tumour_recall": recall, "val_accuracy_without_collection": rest}

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.time() - self.epoch_start
            phase = self.phases[self.phase_index]
            self.state["epoch"] = epoch + 1
            self.state["global_epoch"] += 1
            self.state["epoch_seconds"] = seconds
            lr = self.model.optimizer.learning_rate
            row = {"phase": phase.name, "phase_index": self.phase_index, "epoch": epoch + 1,
                   "global_epoch": self.state["global_epoch"], "seconds": round(seconds, 1),
                   "images_per_second": round(self.state["train_images"] / max(self.train_end - self.epoch_start,
                                                                               1e-6), 1),
                   "learning_rate": float(np.asarray(lr)), **logs, **self._collection_recall(logs)}
            val_acc = logs.get("val_accuracy", float("nan"))
            improved = val_acc > self.state["best_val_accuracy"]
            if improved:
                self.state["best_val_accuracy"] = val_acc
                self.state["best_epoch"] = self.state["global_epoch"]
            self.state["elapsed"] = time.time() - self.state["started"]
            # History first: a resume truncates it to the checkpoint's epoch, so a kill in between loses no row.
            history = rf.read_json(self.run_dir / rf.HISTORY_FILE, [])
            rf.write_json(self.run_dir / rf.HISTORY_FILE, [*history, row], durable=True)
            rf.save_checkpoint(self.run_dir / rf.CHECKPOINT_SUBDIR, self.state, self.model.save,
                               self.model.save_weights if improved else None)
            eta = seconds * self._remaining_epochs(epoch + 1)
            rf.update_status(self.run_dir, state="running", phase=phase.name, phase_index=self.phase_index,
                             epoch=epoch + 1, phase_epochs=phase.epochs, global_epoch=self.state["global_epoch"],
                             epochs_total=sum(p.epochs for p in self.phases), metrics=row,
                             best_val_accuracy=self.state["best_val_accuracy"], best_epoch=self.state["best_epoch"],
                             eta_seconds=eta,
                             elapsed_seconds=time.time() - self.state["started"] + self.state["elapsed_before"])
            extra = "".join(f"  {k} {row[k]:.4f}" for k in ("val_collection_tumour_recall",
                                                             "val_accuracy_without_collection") if k in row)
            log.info("phase %s epoch %d/%d  loss %.4f acc %.4f  val_loss %.4f val_acc %.4f%s  lr %.2e  %.0fs "
                     "(%.1f img/s)%s  ETA %.0f min", phase.name, epoch + 1, phase.epochs, logs.get("loss", np.nan),
                     logs.get("accuracy", np.nan), logs.get("val_loss", np.nan), val_acc, extra, row["learning_rate"],
                     seconds, row["images_per_second"], "  *best*" if improved else "", eta / 60)

    return RunMonitor


def _setup_logging(run_dir: Path) -> None:
    log.setLevel(logging.INFO)
    log.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.FileHandler(run_dir / rf.LOG_FILE), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.propagate = False


RESUME_OVERRIDES = ("epochs_head", "epochs_finetune", "epochs_scratch")


def _add_collections(config: TrainConfig, splits: dict[str, list], no_tumour: int) -> None:
    """Add the tumour collection (partial labels; its validation groups to validation) and the normal pool
    (training only) to `splits`, each training image `*_repeat` times per epoch."""
    if config.tumour_collection:
        if no_tumour < 0:
            raise TrainingConfigError("--tumour-collection needs a data set with a no-tumour class (e.g. notumor).")
        part = tumour_collection(config.tumour_collection, config.val_fraction, config.seed)
        splits["train"] = splits["train"] + part.train * config.tumour_repeat
        splits["validation"] = splits["validation"] + part.validation
        log.info("tumour collection %s: %d training images (x%d), %d validation images, %d groups",
                 config.tumour_collection, len(part.train), config.tumour_repeat, len(part.validation), part.groups)
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
    rescheduled = False
    if resume:
        saved = rf.read_json(run_dir / rf.CONFIG_FILE)
        if saved is None:
            raise TrainingConfigError(f"{run_dir} is not a run folder (no {rf.CONFIG_FILE}); nothing to resume.")
        changes = {k: v for k, v in (epoch_overrides or {}).items() if k in RESUME_OVERRIDES and saved[k] != v}
        config = TrainConfig(**{**saved, **changes})
        validate(config)
        if changes:
            rf.write_json(run_dir / rf.CONFIG_FILE, asdict(config))
            rescheduled = True
    else:
        validate(config)
        if (run_dir / rf.CONFIG_FILE).exists():
            raise TrainingConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or a new folder.")
        (run_dir / rf.CHECKPOINT_SUBDIR).mkdir(parents=True, exist_ok=True)
        rf.write_json(run_dir / rf.CONFIG_FILE, asdict(config))
    (run_dir / rf.CANCEL_FILE).unlink(missing_ok=True)
    _setup_logging(run_dir)
    rf.update_status(run_dir, state="loading", pid=os.getpid(), error=None, started=time.time())
    cancel = _Cancel(run_dir)
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, cancel)
        except ValueError:
            pass

    import keras

    keras.utils.set_random_seed(config.seed)
    gpus, strategy = _devices()
    policy = _precision_policy(config, gpus)
    keras.mixed_precision.set_global_policy(policy)
    jit = bool(gpus)
    log.info("backend %s; devices: %d GPU(s); precision %s; replicas %d; XLA %s", keras.backend.backend(),
             len(gpus), policy, strategy.num_replicas_in_sync, jit)

    index = discover(config.data)
    groups = None
    if config.protocol == "grouped":
        t0 = time.time()
        report = audit(index)
        groups = report.groups
        log.info("audit: %d source groups; %d of %d test scans unseen (%.0fs)", report.summary()["n_groups"],
                 len(report.unseen), len(report.test), time.time() - t0)
    splits = make_splits(index, config.protocol, config.val_fraction, config.seed, groups)
    splits = {k: limit_per_class(v, config.limit_per_class) for k, v in splits.items()}
    num_classes = len(index.class_names)
    normal = no_tumour_class(index.class_names)
    normal = index.class_names.index(normal) if normal else -1
    _add_collections(config, splits, normal)
    if cancel.requested():
        return _cancelled_untrained(run_dir)
    loaded = {}
    for part in ("train", "validation"):
        t0 = time.time()
        loaded[part] = load_samples(splits[part], config.image_size, crop=config.crop)
        log.info("loaded %s: %d images (%d skipped) in %.0fs", part, len(loaded[part].labels),
                 len(loaded[part].skipped), time.time() - t0)
        for message in loaded[part].skipped:
            log.warning("skipped unreadable file: %s", message)
        if cancel.requested():
            return _cancelled_untrained(run_dir)
    batch = config.batch_size * strategy.num_replicas_in_sync
    lesion, grid = None, 0
    if config.mask_weight > 0:
        les.register()
        lesion = les.lesion_masks(loaded["train"].samples, config.image_size, config.crop, masks_dir(config),
                                  normal)
        grid = les.feature_grid(build_model(num_classes, config.image_size, config.backbone, None))
        log.info("lesion supervision (weight %g): %d of %d training scans with a known lesion map (%d tumour "
                 "masks), on a %dx%d grid", config.mask_weight, int(lesion[1].sum()), len(lesion[1]),
                 int((lesion[0].reshape(len(lesion[0]), -1).max(axis=1) > 0).sum()), grid, grid)
        if cancel.requested():
            return _cancelled_untrained(run_dir)
    partial.register()
    train_ds = make_dataset(loaded["train"].images, loaded["train"].labels, num_classes, batch, True, config.seed,
                            config.augment, lesion, grid, normal)
    val_ds = make_dataset(loaded["validation"].images, loaded["validation"].labels, num_classes, batch, False,
                          config.seed, grid=grid, no_tumour=normal)
    held = loaded["validation"].labels == PARTIAL_TUMOUR
    collection_val = (make_dataset(loaded["validation"].images[held], loaded["validation"].labels[held], num_classes,
                                   batch, False, config.seed, grid=grid, no_tumour=normal), normal) if held.any() else None
    steps = int(np.ceil(len(loaded["train"].labels) / batch))

    phases = plan_phases(config)
    ckpt = run_dir / rf.CHECKPOINT_SUBDIR
    checkpoint = rf.latest_checkpoint(ckpt) if resume else None
    state = rf.read_json(checkpoint / rf.CHECKPOINT_STATE) if checkpoint else None
    resuming = state is not None
    if not resuming:
        state = {"phase_index": 0, "epoch": 0, "global_epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0,
                 "elapsed_before": 0.0}
    else:
        log.info("resuming at phase %d epoch %d (best val_accuracy %.4f)", state["phase_index"], state["epoch"],
                 state["best_val_accuracy"])
        elapsed = state.get("elapsed", (checkpoint / rf.CHECKPOINT_STATE).stat().st_mtime - state["started"])
        state["elapsed_before"] = state.get("elapsed_before", 0.0) + elapsed
        history = rf.read_json(run_dir / rf.HISTORY_FILE, [])
        rf.write_json(run_dir / rf.HISTORY_FILE, [r for r in history if r["global_epoch"] <= state["global_epoch"]])
    state["started"] = time.time()
    state["cancelled"] = False
    state["train_images"] = len(loaded["train"].labels)
    state["validation_images"] = len(loaded["validation"].labels)
    train_ds.set_epoch(state["global_epoch"])
    monitor_cls = _monitor_class()
    model = None
    with strategy.scope():
        for phase_index in range(state["phase_index"], len(phases)):
            phase = phases[phase_index]
            if phase_index != state["phase_index"]:
                state.update(phase_index=phase_index, epoch=0)
            if resuming and model is None:
                model = keras.saving.load_model(checkpoint / rf.CHECKPOINT_MODEL)
                if state["epoch"] >= phase.epochs:
                    continue
                if rescheduled and phase.schedule == "cosine":
                    _continue_cosine(model, phase, config, state["epoch"], steps, jit)
            else:
                if model is None:
                    model = build_model(num_classes, config.image_size, config.backbone, config.weights)
                    if config.init_from:
                        _warm_start(model, config.init_from)
                    if config.mask_weight > 0:
                        model = les.with_lesion_head(model, config.mask_weight)
                _set_trainable(model, phase.trainable)
                _compile(model, phase, config, steps, jit)
            log.info("phase %s: %d epochs, lr %.1e, trainable=%s, %s/%s; %d train / %d val images",
                     phase.name, phase.epochs, phase.lr, phase.trainable, phase.optimizer, phase.schedule,
                     len(loaded["train"].labels), len(loaded["validation"].labels))
            callbacks = [monitor_cls(run_dir, phase_index, phases, state, cancel, steps, collection_val),
                         keras.callbacks.EarlyStopping("val_accuracy", patience=config.patience, mode="max")]
            if phase.schedule == "plateau":
                callbacks.append(keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=2, min_lr=1e-7))
            try:
                model.fit(train_ds, validation_data=val_ds, initial_epoch=state["epoch"], epochs=phase.epochs,
                          callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 0)
            except _Cancelled:
                pass
            state["elapsed"] = time.time() - state["started"]
            state["epoch"] = phase.epochs if not state["cancelled"] else state["epoch"]
            rf.save_checkpoint(ckpt, {**state, "phase_index": phase_index})
            if state["cancelled"]:
                break
    if state["cancelled"] and rf.latest_checkpoint(ckpt) is None:
        return _cancelled_untrained(run_dir)
    return _finish(model, config, index, splits, run_dir, state, policy)


def _cancelled_untrained(run_dir: Path) -> Path:
    """A cancel while the data was loading or during the first epoch: no epoch was completed, so there is no
    checkpoint to export (an earlier export and checkpoints of a resumed run stay; a resume starts from them)."""
    out = run_dir / rf.MODEL_SUBDIR
    rf.update_status(run_dir, state="cancelled", model_dir=str(out) if out.is_dir() else None)
    log.info("cancelled before an epoch was completed; nothing exported")
    return out


def _finish(model: Any, config: TrainConfig, index: Any, splits: dict, run_dir: Path, state: dict,
            policy: str) -> Path:
    """Export the best checkpoint as a float32 model folder with its card (and evaluation if complete).

    The exported model is a fresh, uncompiled float32 build holding the trained weights: no optimiser
    state (a third of the file otherwise) and no mixed-precision policy in the saved layers. It is
    evaluated first, then written with its card to a staging folder and published as model/ by one
    rename, so a kill at any moment leaves either no model/ or a complete one (the status says which run
    finished; the picker lists only those).
    """
    import keras

    from core.evaluation.evaluate import evaluate_loaded_model

    ckpt = rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR)
    if ckpt is not None and (ckpt / rf.BEST_WEIGHTS).exists():
        model.load_weights(ckpt / rf.BEST_WEIGHTS)
    keras.mixed_precision.set_global_policy("float32")
    exported = build_model(len(index.class_names), config.image_size, config.backbone, None)
    les.copy_classifier_weights(model, exported)
    model = exported
    out = run_dir / rf.MODEL_SUBDIR
    elapsed = time.time() - state["started"] + state.get("elapsed_before", 0.0)
    card = ModelCard(
        class_names=index.class_names, image_size=config.image_size, backbone=config.backbone,
        preprocessing={**DEFAULT_PREPROCESSING, "crop": config.crop,
                       **({"crop_description": HEAD_CROP} if config.crop == "head" else {})},
        weights_origin=str(config.weights or "none"), feature_layer=feature_layer_name(model),
        name=config.name or run_dir.name,
        training={
            "config": asdict(config), "reproduce_command": reproduce_command(config),
            "phases": [asdict(p) for p in plan_phases(config)],
            "epochs_run": state["global_epoch"], "best_epoch": state["best_epoch"],
            "best_val_accuracy": state["best_val_accuracy"], "wall_seconds": round(elapsed, 1),
            "precision": policy, "cancelled": state["cancelled"],
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "python": platform.python_version(), **_frameworks()},
            "data_fingerprint": {k: fingerprint(v) for k, v in splits.items()},
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "seed": config.seed, "history_file": rf.HISTORY_FILE,
        })
    if resolve_weights(config.weights) is None:
        card.notes.append("Trained from scratch (no ImageNet weights).")
    if config.mask_weight > 0:
        card.notes.append(f"Trained with auxiliary lesion supervision (weight {config.mask_weight:g}): the Training "
                          "split's expert tumour masks as a per-cell target on the last feature map; the head was "
                          "dropped at export, so this model is a plain classifier.")
    if config.tumour_collection:
        card.notes.append(f"Trained with a tumour collection beside the 4-class data ({config.tumour_collection}, "
                          f"x{config.tumour_repeat}): tumour slices of unknown type with a partial label (loss on "
                          "1 - p(no tumour)); its validation groups count in val_accuracy as right when called a "
                          "tumour.")
    if config.normal_pool:
        card.notes.append(f"Trained with a normal pool ({config.normal_pool}, x{config.normal_repeat}) labelled "
                          "no tumour.")
    if config.init_from:
        card.notes.append(f"Warm-started from the weights of {config.init_from} (see that model's card for how it "
                          "was trained), then trained with this card's recipe.")
    staging = rf.staging_dir(out)
    if not state["cancelled"]:
        rf.update_status(run_dir, state="evaluating")
        log.info("evaluating the best checkpoint (epoch %d)", state["best_epoch"])
        rf.crash_point("evaluation")
        trust = fit_trust_hook(model, card, config, staging)  # trust.json/.npz, published with the model
        card.evaluation = evaluate_loaded_model(model, card, config.data, config.protocol, config.seed,
                                                config.val_fraction, per_class=config.limit_per_class, trust=trust)
    model.save(staging / MODEL_FILE)
    rf.crash_point("export")
    card.save(staging)
    rf.publish_dir(staging, out)
    if state["cancelled"]:
        rf.update_status(run_dir, state="cancelled", model_dir=str(out))
        log.info("cancelled; best checkpoint exported to %s (not evaluated)", out)
        return out
    rf.update_status(run_dir, state="finished", model_dir=str(out), eta_seconds=0,
                     test_accuracy=card.evaluation["test"]["accuracy"])
    log.info("finished: test accuracy %.4f; model in %s", card.evaluation["test"]["accuracy"], out)
    return out


def fit_trust_hook(model: Any, card: ModelCard, config: TrainConfig, model_dir: Path) -> Any:
    """Fit the input gate, temperature and conformal sets into a finished model folder (what
    `python -m core calibrate` does for an existing one); None for quick subset runs and tiny data sets."""
    from core.errors import CalibrationError
    from core.evaluation.trust_fit import fit_trust

    if config.limit_per_class:
        return None
    try:
        return fit_trust(model, card, config.data, model_dir, config.protocol, config.seed, config.val_fraction,
                         command=f"python -m core calibrate --data {config.data} --model {model_dir}")
    except CalibrationError as exc:
        log.info("not calibrated: %s", exc)
        return None


def _frameworks() -> dict[str, str]:
    """Keras, its backend and the backend's version (recorded in the card: a model trained on either loads)."""
    import importlib

    import keras

    backend = keras.backend.backend()
    return {"keras": keras.__version__, "backend": backend,
            backend: getattr(importlib.import_module(backend), "__version__", "?")}
