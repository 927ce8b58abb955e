"""What the input gate, calibration and conformal sets add to one classification, on this CPU.

    python -m benchmarks.trust_latency [--model DIR] [--data DIR] [--scans 40] [--repeats 3] [--out FILE.json]

Times `core.model.inference.classify` per file, warm (model loaded, functions traced), without the model folder's
trust (the old path: decode, preprocess, one forward pass) and with it (metadata and pixel rules, the feature
forward pass, the learned score, temperature and the conformal set), interleaved scan by scan so that load from
other processes hits both alike. Target (issue #12): <= 30 ms added per classification.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from core.training.launcher import default_data_dir  # noqa: E402


def main() -> None:
    from core.model.factory import default_model_dir, load_model
    from core.model.inference import classify
    from core.model.trust import load_trust
    from core.quiet import import_tensorflow_quietly

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import_tensorflow_quietly()
    model, card = load_model(args.model)
    trust = load_trust(args.model, card.class_names)
    if trust is None:
        raise SystemExit(f"{args.model} is not calibrated: run `python -m core calibrate` first")
    files = sorted(Path(args.data, "Testing").glob("*/*.jpg"))[:: max(1, 1311 // args.scans)][: args.scans]
    for f in files[:3]:  # warm-up: trace both forward passes, load crepes
        classify(model, card, f)
        classify(model, card, f, trust=trust)
    plain, trusted = [], []
    for _ in range(args.repeats):
        for f in files:
            t = time.perf_counter()
            classify(model, card, f)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            classify(model, card, f, trust=trust)
            trusted.append(time.perf_counter() - t)
    added = [b - a for a, b in zip(plain, trusted)]
    result = {"model": args.model, "gate_score": trust.config.gate_score, "calls": len(plain),
              "plain_ms_median": round(1000 * statistics.median(plain), 2),
              "trusted_ms_median": round(1000 * statistics.median(trusted), 2),
              "added_ms_median": round(1000 * statistics.median(added), 2),
              "added_ms_mean": round(1000 * statistics.mean(added), 2),
              "load_average": os.getloadavg(), "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
