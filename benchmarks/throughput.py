"""Training and inference throughput (images/s) of the model factory's backbones.

Runs each configuration in this one process, side by side, and prints the ratio to the
specification's configuration (EfficientNetB4 @224), because absolute numbers on shared machines
are noisy. On a GPU it also measures mixed precision (float16) beside float32.

    python benchmarks/throughput.py                      # B0 and B4 at 224 (+ B0 at 128, our bundled size)
    python benchmarks/throughput.py --configs EfficientNetB0:224 --train-batches 3
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.quiet import import_tensorflow_quietly  # noqa: E402


def measure(backbone: str, size: int, policy: str, batch: int, train_batches: int, infer_batches: int) -> dict:
    """Images/s for training steps (tf.data pipeline with augmentation) and for inference."""
    import keras

    from core.model import build_model
    from core.training import make_dataset

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_model(4, size, backbone, None)
    model.compile(keras.optimizers.Adamax(1e-3), "categorical_crossentropy", jit_compile="auto")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * train_batches, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, len(images))
    ds = make_dataset(images, labels, 4, batch, training=True, seed=0)
    model.fit(ds.take(1), verbose=0)
    start = time.perf_counter()
    model.fit(ds, verbose=0)
    train_ips = len(images) / (time.perf_counter() - start)
    x = images[:batch].astype(np.float32)
    model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(infer_batches):
        model.predict_on_batch(x)
    infer_ips = batch * infer_batches / (time.perf_counter() - start)
    keras.mixed_precision.set_global_policy("float32")
    return {"backbone": backbone, "image_size": size, "precision": policy, "batch": batch,
            "train_img_s": round(train_ips, 2), "infer_img_s": round(infer_ips, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="EfficientNetB4:224,EfficientNetB0:224,EfficientNetB0:128",
                   help="comma-separated BACKBONE:SIZE; the first is the reference for the ratios")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train-batches", type=int, default=4)
    p.add_argument("--infer-batches", type=int, default=4)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import_tensorflow_quietly()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    policies = ["float32", "mixed_float16"] if gpus else ["float32"]
    device = f"{len(gpus)} GPU(s): {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}" if gpus else "CPU only"
    rows = []
    for item in args.configs.split(","):
        backbone, size = item.split(":")
        for policy in policies:
            rows.append(measure(backbone, int(size), policy, args.batch, args.train_batches, args.infer_batches))
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
