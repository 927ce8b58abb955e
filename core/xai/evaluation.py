"""Quantitative evaluation of the explainers on real test scans; writes `xai_eval.json` by the model.

Sample: seeded and stratified by class, mixing correctly and wrongly classified test scans
(`wrong_fraction` of each class quota when enough errors exist). The class explained is the
predicted one (what the app shows). For every image each method's map and two reference maps
(random noise, centred Gaussian) are scored with every metric of `core.xai.metrics`; the
sanity check (map vs a randomised model's map) runs on the first `sanity_n` images.
Results: mean and 95% t-interval per method and metric, per-class means, seconds per image. Deletion and
insertion curves that are saturated (the information-free baseline already scores like the scan) are
counted (`saturated`) and left out of the means.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.io.atomic import atomic_write_text
from core.model.card import class_label
from core.model.engine import engine_name
from core.model.inference import predict_proba
from core.stats import mean_interval, wilson
from core.xai.explainers import EXPLAINERS, explain, get_spec, with_background
from core.xai.metrics import METRICS, REFERENCE_MAPS, SANITY_DESCRIPTION, SANITY_LABEL, evaluate_map, metric_options
from core.xai.metrics.sanity import randomised_copy, rank_correlation
from core.xai.results import XAI_EVAL_SCHEMA as SCHEMA_VERSION
from core.xai.results import XaiEvaluation

RESULTS_FILE = "xai_eval.json"
# --quick: coarser metrics (per metric); the methods keep the app's defaults
QUICK_METRIC_OPTIONS = {"deletion_auc": {"steps": 10}, "insertion_auc": {"steps": 10},
                        "faithfulness_correlation": {"n_subsets": 20}}

Progress = Callable[[int, int], None]


@dataclass
class EvalImage:
    """One scan of the evaluation sample."""

    relpath: str
    image: np.ndarray
    label: int
    predicted: int


def select_images(model: Any, class_names: list[str], image_size: int, data_root: str | Path, n: int,
                  seed: int = 0, wrong_fraction: float = 0.25, progress: Progress | None = None,
                  crop: str = "none") -> list[EvalImage]:
    """A seeded, class-stratified sample of Testing scans, with misclassified ones where they exist."""
    from core.data.discovery import discover_for_model, load_samples

    index = discover_for_model(data_root, class_names)
    if n < len(class_names):
        raise ExplainError(f"--n must be at least the number of classes ({len(class_names)}), got {n}")
    rng = np.random.default_rng(seed)
    quotas = [n // len(class_names) + (1 if i < n % len(class_names) else 0) for i in range(len(class_names))]
    pool = []
    for label, quota in enumerate(quotas):
        samples = [s for s in index.splits["Testing"] if s.label == label]
        order = rng.permutation(len(samples))[:quota * 4]
        pool.extend(samples[i] for i in sorted(order))
    loaded = load_samples(pool, image_size, progress=progress, crop=crop)
    predicted = predict_proba(model, loaded.images.astype(np.float32)).argmax(axis=1)
    chosen: list[EvalImage] = []
    for label, quota in enumerate(quotas):
        rows = np.flatnonzero(loaded.labels == label)
        wrong = [i for i in rows if predicted[i] != label]
        right = [i for i in rows if predicted[i] == label]
        n_wrong = min(len(wrong), int(round(quota * wrong_fraction)))
        n_wrong = max(n_wrong, quota - len(right))
        picks = wrong[:n_wrong] + right[:quota - n_wrong]
        chosen.extend(EvalImage(loaded.samples[i].relpath, loaded.images[i].astype(np.float32), label,
                                int(predicted[i])) for i in picks)
    return chosen


def mean_ci(values: list[float]) -> dict[str, Any]:
    """Mean and 95% t-interval of the finite values (NaN = undefined, e.g. a constant map), as saved."""
    mean, interval, n = mean_interval(values)
    return {"mean": mean, "ci95": interval.to_list() if interval else [None, None], "n": n}


def proportion_ci(values: list[float]) -> dict[str, Any]:
    """Share of hits among the finite 0/1 values with its Wilson 95% interval (a t-interval on 0/1 data can leave
    [0, 1], e.g. 0.02 [-0.008, 0.048]); same keys as `mean_ci`."""
    data = [v for v in values if v is not None and math.isfinite(v)]
    if not data:
        return {"mean": None, "ci95": [None, None], "n": 0}
    if any(v not in (0.0, 1.0) for v in data):
        raise ValueError("proportion_ci takes 0/1 values")
    hits = int(sum(data))
    return {"mean": hits / len(data), "ci95": wilson(hits, len(data)).to_list(), "n": len(data)}


def _summarise(rows: list[dict[str, float]], labels: list[int], class_names: list[str], kind: str,
               label: str, sanity: list[float] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "label": label}
    for name in METRICS:
        # a saturated curve (the baseline image already scores like the scan) says nothing about the map:
        # it is left out of the mean and counted instead of being averaged in as ~1.0
        out[name] = mean_ci([r[name] for r in rows if not r.get(f"{name}_saturated")])
        out[name]["saturated"] = sum(1 for r in rows if r.get(f"{name}_saturated"))
    if sanity is not None:
        out["sanity_rank_correlation"] = mean_ci(sanity)
    out["seconds_per_image"] = mean_ci([r["seconds"] for r in rows])
    per_class = {}
    for index, class_name in enumerate(class_names):
        own = [r for r, lab in zip(rows, labels) if lab == index]
        per_class[class_name] = {name: mean_ci([r[name] for r in own if not r.get(f"{name}_saturated")])["mean"]
                                 for name in METRICS}
        per_class[class_name]["n"] = len(own)
    out["per_class"] = per_class
    return out


@dataclass
class ImageScores:
    """One scan's scores: per map (methods, then reference maps) its metric values and seconds; per method its
    sanity correlation when the scan is among the first `sanity_n`."""

    rows: dict[str, dict[str, float]]
    sanity: dict[str, float]


def score_image(model: Any, random_model: Any | None, card: Any, item: EvalImage, index: int,
                method_opts: dict[str, dict[str, Any]], metric_opts: dict[str, dict[str, Any]],
                seed: int) -> ImageScores:
    """Score every map of one scan (`index` = its place in the sample, which seeds its reference maps and metrics,
    so a scan scored alone or on another worker gets the values of the sequential loop). With `random_model`,
    each method's map is also compared with the randomised model's (the sanity check)."""
    maps: dict[str, tuple[np.ndarray, float]] = {}
    sanity: dict[str, float] = {}
    for method, options in method_opts.items():
        result = explain(model, item.image, method, item.predicted, **options)
        maps[method] = (result.map, result.seconds)
        if random_model is not None:
            other = explain(random_model, item.image, method, item.predicted, **options)
            sanity[method] = rank_correlation(result.map, other.map)
    for name, (_, make) in REFERENCE_MAPS.items():
        start = time.perf_counter()
        maps[name] = (make(card.image_size, seed + index), time.perf_counter() - start)
    rows = {}
    for name, (saliency, seconds) in maps.items():
        scores = evaluate_map(model, item.image, saliency, item.predicted, seed=seed + index, options=metric_opts)
        rows[name] = {**{k: v.value for k, v in scores.items()},
                      **{f"{k}_saturated": True for k, v in scores.items() if v.saturated}, "seconds": seconds}
    return ImageScores(rows, sanity)


def score_images(model: Any, card: Any, images: list[EvalImage], method_opts: dict[str, dict[str, Any]],
                 metric_opts: dict[str, dict[str, Any]], seed: int, sanity_n: int,
                 progress: Progress | None = None) -> list[ImageScores]:
    """`score_image` over the sample in this process; the sanity check on the first `sanity_n` scans."""
    random_model = randomised_copy(model, seed) if sanity_n > 0 else None
    out = []
    for i, item in enumerate(images):
        out.append(score_image(model, random_model if i < sanity_n else None, card, item, i, method_opts,
                               metric_opts, seed))
        if progress:
            progress(i + 1, len(images))
    return out


def _by_map(scored: list[ImageScores], methods: list[str]) -> tuple[dict[str, list[dict[str, float]]],
                                                                   dict[str, list[float]]]:
    """Per map its rows in scan order; per method its sanity correlations."""
    names = list(scored[0].rows) if scored else [*methods, *REFERENCE_MAPS]
    rows = {name: [s.rows[name] for s in scored] for name in names}
    sanity = {m: [s.sanity[m] for s in scored if m in s.sanity] for m in methods}
    return rows, sanity


def _settings(model: Any, card: Any, images: list[EvalImage], quick: bool, metric_opts: dict[str, dict[str, Any]],
              method_opts: dict[str, dict[str, Any]], sanity_n: int, wrong_fraction: float) -> dict[str, Any]:
    """The `settings` block of the document: how the numbers were made."""
    composition = {
        name: {"correct": sum(1 for it in images if it.label == k and it.predicted == k),
               "wrong": sum(1 for it in images if it.label == k and it.predicted != k)}
        for k, name in enumerate(card.class_names)}
    return {
        "quick": quick,
        "engine": engine_name(model),
        "explained_class": "predicted class",
        "metric_options": metric_opts,
        "method_options": {m: get_spec(m).recorded(o) for m, o in method_opts.items()},
        "baselines": {"deletion": f"pixels set to {metric_opts['deletion_auc']['baseline']}",
                      "insertion": f"pixels restored into a {metric_opts['insertion_auc']['baseline']} copy",
                      "faithfulness": f"patches set to {metric_opts['faithfulness_correlation']['baseline']}",
                      "reference_maps": {k: v[0] for k, v in REFERENCE_MAPS.items()}},
        "sanity_n": min(sanity_n, len(images)),
        "sanity": {"label": SANITY_LABEL, "higher_is_better": False, "description": SANITY_DESCRIPTION,
                   "randomised": "head + top 8 weighted backbone layers re-initialised (seeded)"},
        "sample": {"split": "Testing", "wrong_fraction_target": wrong_fraction, "per_class": composition,
                   "labels": {k: class_label(k) for k in card.class_names}},
        "images": [it.relpath for it in images],
    }


def run_eval(model: Any, card: Any, data_root: str | Path, n: int = 100, methods: list[str] | None = None,
             seed: int = 0, sanity_n: int = 10, quick: bool = False, background: np.ndarray | None = None,
             wrong_fraction: float = 0.25, progress: Progress | None = None,
             select_progress: Progress | None = None,
             scorer: Callable[..., list[ImageScores]] | None = None) -> dict[str, Any]:
    """Evaluate `methods` (default all) on `n` test scans; returns the xai_eval.json document. `scorer` replaces
    `score_images` (same arguments; e.g. `core.batch.xai_eval.ray_image_scorer`, which fans the scans out)."""
    methods = list(methods or EXPLAINERS)
    for method in methods:
        get_spec(method)
    metric_opts = metric_options()
    for name, values in (QUICK_METRIC_OPTIONS if quick else {}).items():
        metric_opts[name].update(values)
    method_opts = with_background(methods, background)
    images = select_images(model, card.class_names, card.image_size, data_root, n, seed, wrong_fraction,
                           select_progress, card.crop)
    scored = (scorer or score_images)(model, card, images, method_opts, metric_opts, seed, sanity_n, progress)
    rows, sanity = _by_map(scored, methods)
    labels = [item.label for item in images]
    summary = {m: _summarise(rows[m], labels, card.class_names, "method", get_spec(m).label, sanity[m])
               for m in methods}
    summary.update({name: _summarise(rows[name], labels, card.class_names, "baseline", label, None)
                    for name, (label, _) in REFERENCE_MAPS.items()})
    return {
        "schema_version": SCHEMA_VERSION,
        "model": card.name,
        "n_images": len(images),
        "seed": seed,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "",
        "settings": _settings(model, card, images, quick, metric_opts, method_opts, sanity_n, wrong_fraction),
        "metrics": {name: {"label": s.label, "higher_is_better": s.higher_is_better, "description": s.description}
                    for name, s in METRICS.items()},
        "methods": summary,
    }


def save_results(model_dir: str | Path, results: dict[str, Any] | XaiEvaluation) -> Path:
    """Write xai_eval.json atomically (the metrics page may read it at any moment); a dict is checked first by
    reading it as the typed document, so what is written is what the page can read."""
    document = results if isinstance(results, XaiEvaluation) else XaiEvaluation.from_json(results)
    return atomic_write_text(Path(model_dir) / RESULTS_FILE, json.dumps(document.to_json(), indent=2) + "\n")


def load_results(model_dir: str | Path) -> XaiEvaluation | None:
    """The saved evaluation of a model folder, or None when it has not been run."""
    path = Path(model_dir) / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExplainError(f"{path} is not valid JSON ({exc}); rerun `python -m core xai-eval`") from exc
    except OSError as exc:
        raise ExplainError(f"{path} cannot be read ({exc.strerror or exc})") from exc
    try:
        return XaiEvaluation.from_json(raw)
    except ExplainError as exc:
        raise ExplainError(f"{path}: {exc}") from exc
