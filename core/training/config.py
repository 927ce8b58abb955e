"""What defines a training run: its options (config.json), the phases they plan, and their validation.

Kept apart from the loop so that the app, the launcher and the export read a run's recipe without importing Keras.
"""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.data.discovery import PROTOCOLS
from core.data.masks import INDEX_FILE, MASKS_DIR_NAME, default_masks_dir
from core.errors import TrainingConfigError
from core.io.images import CROPS
from core.model.card import load_card
from core.model.factory import BACKBONES, DEFAULT_BACKBONE, resolve_weights
from core.training.augment import AUGMENTATIONS

# How the tumour collection's draws per epoch are spread (measured: docs/generalisation.md).
TUMOUR_BALANCE = {"image": "every tumour-collection image repeated --tumour-repeat times",
                  "group": "the same number of draws shared equally among the collection's near-duplicate groups"}
# The options a resume may change (a phase's length); every other option comes from the run's config.json.
RESUME_OVERRIDES = ("epochs_head", "epochs_finetune", "epochs_scratch")


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
    tumour_balance: str = "image"
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
    if config.tumour_balance not in TUMOUR_BALANCE:
        raise TrainingConfigError(f"tumour_balance must be one of {', '.join(TUMOUR_BALANCE)}, got "
                                  f"{config.tumour_balance!r}.")
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
