"""Training and inference throughput (images/s) of the model factory's backbones.

Runs each configuration in this one process, side by side, and prints the ratio to the
specification's configuration (EfficientNetB4 @224), because absolute numbers on shared machines
are noisy. On a GPU it also measures mixed precision (float16, bfloat16) beside float32.

    python benchmarks/throughput.py                      # B0 and B4 at 224 (+ B0 at 128, our bundled size)
    python benchmarks/throughput.py --configs EfficientNetB0:224 --train-batches 3

`--pipeline tfdata` (default) feeds training through the training loop's own tf.data pipeline
(`core.training.loop.make_dataset`, augmentation included); `--pipeline arrays` feeds in-memory arrays
to `fit`, which measures the model alone and also runs on a Keras backend without TensorFlow
(`KERAS_BACKEND=jax` or `torch`): the route for a GPU host whose image has no TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.quiet import import_tensorflow_quietly  # noqa: E402


def measure(backbone: str, size: int, policy: str, batch: int, train_batches: int, infer_batches: int,
            pipeline: str = "tfdata") -> dict:
    """Images/s for training steps (one warm-up epoch first, so compilation is not counted) and for inference."""
    import keras

    from core.model.factory import build_model

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_model(4, size, backbone, None)
    model.compile(keras.optimizers.Adamax(1e-3), "categorical_crossentropy", jit_compile="auto")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * train_batches, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, len(images))
    if pipeline == "tfdata":
        from core.training.loop import make_dataset

        ds = make_dataset(images, labels, 4, batch, training=True, seed=0)
        model.fit(ds.take(1), verbose=0)
        start = time.perf_counter()
        model.fit(ds, verbose=0)
    else:
        x, y = images.astype(np.float32), np.eye(4, dtype=np.float32)[labels]
        model.fit(x[:batch], y[:batch], batch_size=batch, verbose=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, verbose=0, shuffle=False)
    train_ips = len(images) / (time.perf_counter() - start)
    x = images[:batch].astype(np.float32)
    np.asarray(model.predict_on_batch(x))
    start = time.perf_counter()
    for _ in range(infer_batches):
        np.asarray(model.predict_on_batch(x))
    infer_ips = batch * infer_batches / (time.perf_counter() - start)
    keras.mixed_precision.set_global_policy("float32")
    return {"backbone": backbone, "image_size": size, "precision": policy, "batch": batch, "pipeline": pipeline,
            "train_img_s": round(train_ips, 2), "infer_img_s": round(infer_ips, 2)}


def accelerators() -> tuple[str, bool]:
    """A description of the devices the active Keras backend computes on, and whether one is a GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
    elif backend == "jax":
        import jax

        names = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    else:
        names = []
    where = f"{len(names)} GPU(s): {', '.join(names)}" if names else "CPU only"
    return f"keras {keras.__version__} on {backend}; {where}", bool(names)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="EfficientNetB4:224,EfficientNetB0:224,EfficientNetB0:128",
                   help="comma-separated BACKBONE:SIZE; the first is the reference for the ratios")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train-batches", type=int, default=4)
    p.add_argument("--infer-batches", type=int, default=4)
    p.add_argument("--pipeline", choices=("tfdata", "arrays"), default="tfdata",
                   help="tfdata: the training loop's own input pipeline; arrays: the model alone, any Keras backend")
    p.add_argument("--precisions", default="",
                   help="comma-separated Keras dtype policies (default: float32, plus mixed_float16 and "
                        "mixed_bfloat16 on a GPU)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import_tensorflow_quietly()
    import keras

    if args.pipeline == "tfdata" and keras.backend.backend() != "tensorflow":
        p.error("--pipeline tfdata needs the TensorFlow backend; use --pipeline arrays")
    device, on_gpu = accelerators()
    policies = (args.precisions.split(",") if args.precisions
                else ["float32", "mixed_float16", "mixed_bfloat16"] if on_gpu else ["float32"])
    rows = []
    for item in args.configs.split(","):
        backbone, size = item.split(":")
        for policy in policies:
            rows.append(measure(backbone, int(size), policy, args.batch, args.train_batches, args.infer_batches,
                                args.pipeline))
            print(f"  measured {rows[-1]}", file=sys.stderr, flush=True)
    ref = rows[0]
    if args.json:
        print(json.dumps({"device": device, "rows": rows}, indent=2))
        return 0
    print(f"device: {device}; batch {args.batch}; reference = {ref['backbone']}@{ref['image_size']} {ref['precision']}")
    print(f"{'config':<28}{'train img/s':>12}{'x ref':>7}{'infer img/s':>13}{'x ref':>7}")
    for r in rows:
        name = f"{r['backbone']}@{r['image_size']} {r['precision']}"
        print(f"{name:<28}{r['train_img_s']:>12.1f}{r['train_img_s'] / ref['train_img_s']:>7.2f}"
              f"{r['infer_img_s']:>13.1f}{r['infer_img_s'] / ref['infer_img_s']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
