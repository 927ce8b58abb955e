"""Which training-recipe ingredients matter: models (and inference-time variants) side by side on the grouped
validation split and on shifted copies of it that we build ourselves (never on external-eval).

    python -m benchmarks.recipe_ablation --data ../shared/data/brain-tumor-mri \
        --arm "bundled (no crop)=assets/models/default" --arm "bundled + head crop at inference=assets/models/default:head" \
        --arm "recipe=runs/b0-robust/model" [--limit-per-class 60] [--out benchmarks/results/recipe_ablation.json]

An arm is LABEL=MEMBER[&MEMBER...] with MEMBER = MODEL_DIR[:CROP][+flip]; CROP overrides the card's crop, +flip
averages the probabilities of the scan and its mirror image (flip test-time augmentation), and several members make
a small ensemble (their probabilities averaged); all three are inference-time ingredients. Shifts:
zoom-out into 25% black padding (framing), CLAHE (contrast; not among the training augmentations), gamma 0.6
and 1.6, blur + noise, JPEG quality 30, and the mirror image. Reported per arm and shift: accuracy, tumour
recall (any tumour class vs notumor) and notumor specificity, with Wilson 95% intervals.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.discovery import discover, limit_per_class, make_splits  # noqa: E402
from core.data.leakage import check_leakage  # noqa: E402
from core.evaluation.external import proportion  # noqa: E402
from core.io.images import preprocess, read_image  # noqa: E402
from core.model.factory import load_model  # noqa: E402
from core.model.inference import predict_proba  # noqa: E402


def _pad(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.copyMakeBorder(image, h // 4, h // 4, w // 4, w // 4, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _clahe(image: np.ndarray) -> np.ndarray:
    gray = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    return np.repeat(gray[..., None], 3, axis=2)


def _gamma(value: float) -> Callable[[np.ndarray], np.ndarray]:
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** value + 0.5, 0, 255).astype(np.uint8)
    return lambda image: cv2.LUT(image, table)


def _blur_noise(image: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(int(image.sum()) % (2 ** 32))
    out = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0) + rng.normal(0, 6, image.shape[:2])[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 30])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED).reshape(image.shape)


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as is": lambda image: image, "pad 25%": _pad, "CLAHE": _clahe, "gamma 0.6": _gamma(0.6),
    "gamma 1.6": _gamma(1.6), "blur+noise": _blur_noise, "JPEG q30": _jpeg,
    "mirror": lambda image: np.ascontiguousarray(image[:, ::-1]),
}


def _scores(labels: np.ndarray, predicted: np.ndarray, normal: int) -> dict[str, Any]:
    tumour = labels != normal
    return {"accuracy": proportion(int((predicted == labels).sum()), len(labels)),
            "tumour_recall": proportion(int((predicted[tumour] != normal).sum()), int(tumour.sum())),
            "notumor_specificity": proportion(int((predicted[~tumour] == normal).sum()), int((~tumour).sum()))}


def _member(spec: str) -> dict[str, Any]:
    """One model of an arm: MODEL_DIR[:CROP][+flip], loaded."""
    flip = spec.endswith("+flip")
    model_dir, _, crop = spec.removesuffix("+flip").partition(":")
    model, card = load_model(model_dir)
    return {"dir": model_dir, "model": model, "card": card, "crop": crop or card.crop, "flip": flip}


def _probabilities(member: dict[str, Any], decoded: list[np.ndarray]) -> np.ndarray:
    """The member's class probabilities for decoded scans, through the one preprocessing and inference path."""
    images = np.stack([preprocess(image, member["card"].image_size, member["crop"]) for image in decoded])
    probabilities = predict_proba(member["model"], images)
    if member["flip"]:
        probabilities = (probabilities + predict_proba(member["model"], np.ascontiguousarray(images[:, :, ::-1]))) / 2
    return probabilities


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--arm", action="append", required=True, help="LABEL=MODEL_DIR[:CROP][+flip][&MODEL_DIR...]")
    parser.add_argument("--limit-per-class", type=int, default=0, help="validation scans per class (0 = all)")
    parser.add_argument("--seed", type=int, default=42, help="the split seed of the models' training")
    parser.add_argument("--out", default="benchmarks/results/recipe_ablation.json")
    args = parser.parse_args(argv)

    index = discover(args.data)
    report = check_leakage(index)
    validation = limit_per_class(make_splits(index, "grouped", 0.1, args.seed, report.groups)["validation"],
                                 args.limit_per_class)
    labels = np.array([s.label for s in validation])
    normal = index.class_names.index("notumor")
    decoded = [read_image(s.path) for s in validation]
    results: dict[str, Any] = {"n_validation": len(validation), "arms": {}}
    for arm in args.arm:
        label, spec = arm.split("=", 1)
        members = [_member(member) for member in spec.split("&")]
        start = time.perf_counter()
        rows = {}
        for shift, transform in SHIFTS.items():
            shifted = [transform(image) for image in decoded]
            probabilities = np.mean([_probabilities(member, shifted) for member in members], axis=0)
            rows[shift] = _scores(labels, probabilities.argmax(axis=1), normal)
        results["arms"][label] = {"members": [{"model": m["dir"], "crop": m["crop"], "flip_tta": m["flip"]}
                                              for m in members],
                                  "shifts": rows, "seconds": round(time.perf_counter() - start, 1)}
        cells = "  ".join(f"{s} {r['accuracy']['value']:.3f}" for s, r in rows.items())
        print(f"{label}: {cells}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
