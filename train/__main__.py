"""`python -m train --data DIR [options]`: train a BrainScan model into a run folder.

Defaults follow the specification (EfficientNetB4, ImageNet weights, two phases). With
`--weights none` the from-scratch recipe runs instead. `--resume RUN_DIR` continues a killed run.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

from core.data.discovery import PROTOCOLS
from core.errors import BrainScanError
from core.io.images import CROPS
from core.model.factory import BACKBONES
from core.settings import settings
from core.training.augment import AUGMENTATIONS
from core.training.config import RESUME_OVERRIDES, TUMOUR_BALANCE, TrainConfig
from core.training.loop import train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig(data="")
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None if settings().data is None else str(settings().data),
                   help="dataset root (Training/, Testing/); or BRAINSCAN_DATA")
    p.add_argument("--run-dir", help="run folder (default runs/<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint "
                   "(--epochs-* given with it change the run's length)")
    p.add_argument("--backbone", default=defaults.backbone, choices=BACKBONES)
    p.add_argument("--weights", default=defaults.weights, help="imagenet, none, or a local weights file")
    p.add_argument("--image-size", type=int, default=defaults.image_size)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--epochs-head", type=int, default=defaults.epochs_head, help="phase 1 (frozen backbone)")
    p.add_argument("--epochs-finetune", type=int, default=defaults.epochs_finetune, help="phase 2 (top layers unfrozen)")
    p.add_argument("--lr-head", type=float, default=defaults.lr_head)
    p.add_argument("--lr-finetune", type=float, default=defaults.lr_finetune)
    p.add_argument("--unfreeze-top", type=int, default=defaults.unfreeze_top)
    p.add_argument("--epochs-scratch", type=int, default=defaults.epochs_scratch, help="from-scratch recipe (weights none)")
    p.add_argument("--lr-scratch", type=float, default=defaults.lr_scratch)
    p.add_argument("--warmup-epochs", type=int, default=defaults.warmup_epochs)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    p.add_argument("--patience", type=int, default=defaults.patience, help="early stopping on val accuracy")
    p.add_argument("--protocol", default=defaults.protocol, choices=PROTOCOLS,
                   help="grouped: validation drawn by source group (no source slice on both sides)")
    p.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--limit-per-class", type=int, default=0, help="use at most N images per class and split (quick runs)")
    p.add_argument("--precision", default=defaults.precision, choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"))
    p.add_argument("--name", default="")
    p.add_argument("--crop", default=defaults.crop, choices=CROPS, help="head: crop every scan to the head first")
    p.add_argument("--augment", default=defaults.augment, choices=AUGMENTATIONS,
                   help="robust: geometric + intensity/acquisition augmentation; spec: geometric only")
    p.add_argument("--init-from", default="", metavar="MODEL_DIR",
                   help="warm start from a model folder's weights (same backbone and image size)")
    p.add_argument("--mask-weight", type=float, default=defaults.mask_weight,
                   help="auxiliary lesion supervision from the Training masks (0 = off; e.g. 0.5)")
    p.add_argument("--masks", default=defaults.masks, metavar="DIR",
                   help="the expert masks folder (default: brain-tumor-mri-masks beside --data, or BRAINSCAN_MASKS)")
    p.add_argument("--tumour-collection", default=defaults.tumour_collection, metavar="DIR",
                   help="a tumour/no-tumour collection (index.csv with use, label, dup_group; e.g. "
                        "brain-mri-tumour-normal): its use=train tumour rows train with a partial label")
    p.add_argument("--tumour-repeat", type=int, default=defaults.tumour_repeat,
                   help="how often each tumour-collection image is seen per epoch")
    p.add_argument("--tumour-balance", choices=sorted(TUMOUR_BALANCE), default=defaults.tumour_balance,
                   help="image: each tumour-collection image --tumour-repeat times per epoch; group: as many draws, "
                        "shared equally among its near-duplicate groups (dup_group)")
    p.add_argument("--normal-pool", default=defaults.normal_pool, metavar="DIR",
                   help="a pool of normal slices (index.csv with use; e.g. brain-mri-normal-brisc), labelled no tumour")
    p.add_argument("--normal-repeat", type=int, default=defaults.normal_repeat,
                   help="how often each normal-pool image is seen per epoch")
    p.add_argument("--nice", type=int, default=None, metavar="N",
                   help="lower this run's CPU priority to nice N (0-19) before it starts; the sidebar launcher "
                        "passes BRAINSCAN_TRAIN_NICE (default 10), so the app's sessions come first")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from core.quiet import import_tensorflow_quietly

    args = parse_args(argv)
    if args.nice is not None:
        from core.training.priority import lower_priority

        print(f"CPU priority: {lower_priority(args.nice)}", flush=True)
    import_tensorflow_quietly()
    try:
        if args.resume:
            given = {k: getattr(args, k) for k in RESUME_OVERRIDES if _given(k, argv or sys.argv[1:])}
            out = train(TrainConfig(data=""), args.resume, resume=True, epoch_overrides=given)
        else:
            if not args.data:
                raise BrainScanError("No data folder: pass --data DIR or set BRAINSCAN_DATA.")
            names = {f.name for f in fields(TrainConfig)} - {"command"}
            config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
            run_dir = Path(args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
            print(f"run folder: {run_dir}", flush=True)
            out = train(config, run_dir)
    except BrainScanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _mark_failed(args, exc)
        return 2
    except BaseException as exc:
        _mark_failed(args, exc)
        raise
    print(f"model: {out}")
    return 0


def _given(name: str, argv: list[str]) -> bool:
    """True when option `name` appears on the command line, as `--flag VALUE` or `--flag=VALUE`."""
    flag = f"--{name.replace('_', '-')}"
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def _mark_failed(args: argparse.Namespace, exc: BaseException) -> None:
    from core.training import run_files as rf

    run_dir = Path(args.resume or args.run_dir or "")
    if args.resume or args.run_dir:
        if (run_dir / rf.CONFIG_FILE).exists():
            rf.update_status(run_dir, state="failed", error=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
