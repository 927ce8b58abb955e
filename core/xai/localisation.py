"""Do the maps point at the tumour? Localisation (against expert masks) and ROAD on tumour scans.

For each scan with an expert mask, every method explains the TRUE class (the tumour the mask marks),
and the map is scored with every metric of `core.xai.metrics.LOCALISATION` and with ROAD (MoRF, LeRF);
the reference maps (random, centred Gaussian, uniform = the mask's area fraction) are scored the same
way. Results: mean and 95% t-interval per method, metric and class, for all rows, the rows without an
annotator flag, and the strict unseen subset (no Training scan from the same source slice).

Rows: Testing masks for evaluation; `split="Training"` restricted to the model's validation split
(scans the model did not train on) for choosing explainer options. Never tune on Testing masks.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.masks import MaskIndex, MaskRow
from core.errors import DataLayoutError, ExplainError
from core.io.atomic import atomic_write_text
from core.model.engine import engine_name
from core.xai.explainers import EXPLAINERS, explain, get_spec, with_background
from core.xai.metrics import (
    LOCALISATION,
    LOCALISATION_REFERENCE_MAPS,
    METRICS,
    MetricOptions,
    evaluate_map,
    localise_map,
)
from core.xai.results import LOCALISATION_SCHEMA, LocalisationRecord

ROAD_METRICS = ("road_morf", "road_lerf")
LOCALISATION_FILE = "xai_localisation.json"
SUBSETS = {"all": "all rows", "unflagged": "rows without an annotator flag", "unseen": "strict unseen subset"}

Progress = Callable[[int, int], None]


@dataclass
class MaskedScan:
    """A scan with its expert mask at model resolution."""

    row: MaskRow
    image: np.ndarray
    mask: np.ndarray
    label: int
    unseen: bool


def validation_files(card: Any, data_root: str | Path) -> set[str] | None:
    """Dataset-relative paths of the model's validation split, split again as its training did (the grouped
    protocol by the leakage audit's source groups, as `python -m train` does); None when the card does not say how
    it split or split another way."""
    from core.data.discovery import discover_for_model, make_splits
    from core.data.leakage import check_leakage

    config = (getattr(card, "training", None) or {}).get("config", {}) if isinstance(
        getattr(card, "training", None), dict) else {}
    protocol = config.get("protocol", "default")
    if protocol not in ("default", "grouped"):
        return None
    index = discover_for_model(data_root, card.class_names)
    groups = check_leakage(index).groups if protocol == "grouped" else None
    splits = make_splits(index, protocol, float(config.get("val_fraction", 0.1)), int(config.get("seed", 42)), groups)
    return {s.relpath for s in splits["validation"]}


def select_rows(masks: MaskIndex, class_names: list[str], split: str, n: int, seed: int = 0,
                allowed: set[str] | None = None) -> list[MaskRow]:
    """A seeded sample of `n` mask rows of one split, stratified over the tumour classes the model knows."""
    classes = [c for c in class_names if any(r.class_name == c for r in masks.rows)]
    if not classes:
        raise ExplainError(f"no expert masks for any of the model's classes {class_names}")
    rng = np.random.default_rng(seed)
    per_class: list[list[MaskRow]] = []
    for i, name in enumerate(classes):
        quota = n // len(classes) + (1 if i < n % len(classes) else 0)
        pool = [r for r in masks.select(split) if r.class_name == name and (allowed is None or r.file in allowed)]
        per_class.append([pool[j] for j in sorted(rng.permutation(len(pool))[:quota])])
    # classes interleaved, so that a run stopped by its time budget is still balanced
    longest = max(len(rows) for rows in per_class)
    return [rows[k] for k in range(longest) for rows in per_class if k < len(rows)]


def load_scans(masks: MaskIndex, rows: list[MaskRow], data_root: str | Path, class_names: list[str],
               image_size: int, crop: str = "none") -> list[MaskedScan]:
    """Images through the one preprocessing path (the card's `crop` included), each mask framed like its scan
    (`model_view` with the scan as reference) and resized to the model's input size."""
    from core.data.masks import fit_mask
    from core.io.images import model_view, preprocess, read_image

    root = Path(data_root)
    scans = []
    for r in rows:
        rgb = read_image(root / r.file)
        mask = masks.load(r).astype(np.float32)
        if mask.shape != rgb.shape[:2]:
            raise DataLayoutError(f"mask {r.mask} is {mask.shape[1]}×{mask.shape[0]}, its scan {r.file} "
                                  f"{rgb.shape[1]}×{rgb.shape[0]}: a mask must have its scan's geometry")
        scans.append(MaskedScan(r, preprocess(rgb, image_size, crop), fit_mask(model_view(mask, crop, rgb), image_size),
                                class_names.index(r.class_name), masks.unseen(r)))
    return scans


def read_checkpoint(checkpoint: Path | None) -> dict[str, dict[str, Any]]:
    """The records of a checkpoint file (JSON lines) by scan file; a torn last line is ignored."""
    done: dict[str, dict[str, Any]] = {}
    if checkpoint is not None and checkpoint.is_file():
        for line in checkpoint.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                done[record["file"]] = record
    return done


def score_scans(model: Any, scans: list[MaskedScan], methods: list[str], method_options: dict[str, dict[str, Any]],
                seed: int = 0, road: bool = True, road_options: MetricOptions | None = None,
                references: bool = True, progress: Progress | None = None,
                checkpoint: Path | None = None, deadline: float | None = None) -> list[dict[str, Any]]:
    """One record per scan: for each method (and reference map) its localisation values, ROAD and seconds.

    With `checkpoint` (a JSON-lines file), every record is appended as it is made and records already there
    are reused, so an interrupted evaluation continues where it stopped. With `deadline` (a
    `time.perf_counter()` value) no new scan is started after it: the records made so far are returned."""
    done = read_checkpoint(checkpoint)
    records = []
    size = int(model.input_shape[1])
    for i, scan in enumerate(scans):
        if scan.row.file in done:
            records.append(done[scan.row.file])
            if progress:
                progress(i + 1, len(scans))
            continue
        if deadline is not None and time.perf_counter() > deadline:
            break
        maps: dict[str, tuple[np.ndarray, float]] = {}
        for method in methods:
            result = explain(model, scan.image, method, scan.label, **method_options.get(method, {}))
            maps[method] = (result.map, result.seconds)
        if references:
            for name, (_, make) in LOCALISATION_REFERENCE_MAPS.items():
                maps[name] = (make(size, seed + i), 0.0)
        record: dict[str, Any] = {"file": scan.row.file, "class": scan.row.class_name, "label": scan.label,
                                  "flagged": scan.row.flagged, "unseen": scan.unseen,
                                  "area": float(scan.mask.mean()), "maps": {}}
        for name, (saliency, seconds) in maps.items():
            values: dict[str, float] = localise_map(saliency, scan.mask)
            if road and name != "uniform":
                scores = evaluate_map(model, scan.image, saliency, scan.label, seed=seed + i, metrics=ROAD_METRICS,
                                      options=road_options)
                values.update({k: v.value for k, v in scores.items()})
            record["maps"][name] = {**values, "seconds": seconds}
        records.append(record)
        if checkpoint is not None:
            with checkpoint.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        if progress:
            progress(i + 1, len(scans))
    return records


def _mean_ci(values: list[float], binary: bool = False) -> dict[str, Any]:
    from core.xai.evaluation import mean_ci, proportion_ci

    return (proportion_ci if binary else mean_ci)(values)


def summarise(records: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """Per subset, map, metric: overall and per-class mean with 95% interval (Wilson for hit/miss metrics)."""
    road = [m for m in ROAD_METRICS if any(m in v for r in records for v in r["maps"].values())]
    metrics = [*LOCALISATION, *road, "seconds"]
    classes = [c for c in class_names if any(r["class"] == c for r in records)]
    names = list(records[0]["maps"]) if records else []
    out: dict[str, Any] = {}
    for subset in SUBSETS:
        rows = [r for r in records if subset == "all" or (subset == "unflagged" and not r["flagged"])
                or (subset == "unseen" and r["unseen"])]
        block: dict[str, Any] = {"n": len(rows), "per_class_n": {c: sum(r["class"] == c for r in rows) for c in classes},
                                 "mask_area": _mean_ci([r["area"] for r in rows]), "maps": {}}
        for name in names:
            entry: dict[str, Any] = {}
            for metric in metrics:
                values = [r["maps"][name].get(metric) for r in rows]
                if all(v is None for v in values):
                    continue
                binary = metric in LOCALISATION and LOCALISATION[metric].binary
                entry[metric] = {"all": _mean_ci([v for v in values if v is not None], binary),
                                 **{c: _mean_ci([r["maps"][name].get(metric) for r in rows
                                                 if r["class"] == c and r["maps"][name].get(metric) is not None],
                                                binary)
                                    for c in classes}}
            block["maps"][name] = entry
        out[subset] = block
    return out


def run_localisation(model: Any, card: Any, data_root: str | Path, masks: MaskIndex, n: int = 300,
                     methods: list[str] | None = None, split: str = "Testing", seed: int = 0, road: bool = True,
                     background: np.ndarray | None = None, method_options: dict[str, dict[str, Any]] | None = None,
                     progress: Progress | None = None, checkpoint_dir: str | Path | None = None,
                     budget_minutes: float | None = None,
                     scorer: Callable[..., list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The localisation + ROAD evaluation document (`xai_localisation.json`).

    `scorer` replaces `score_scans` (same arguments; e.g. `core.batch.localisation.ray_scorer`, which fans the
    scans out on Ray and makes the same records).

    With `checkpoint_dir`, per-scan records go to a JSON-lines file there whose name hashes the settings
    (model file, methods, options, split, n, seed, ROAD); a rerun with the same settings continues it.
    With `budget_minutes`, no new scan starts after that time; `n_images` says how many were done."""
    methods = list(methods or EXPLAINERS)
    for method in methods:
        get_spec(method)
    allowed = validation_files(card, data_root) if split == "Training" else None
    rows = select_rows(masks, card.class_names, split, n, seed, allowed)
    scans = load_scans(masks, rows, data_root, card.class_names, card.image_size, card.crop)
    options = with_background(methods, background, method_options)
    recorded_options = {m: get_spec(m).recorded(o) for m, o in options.items()}
    checkpoint = None
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        key = json.dumps([card.name, card.crop, methods, recorded_options, split, n, seed, road], sort_keys=True,
                         default=str)
        checkpoint = Path(checkpoint_dir) / f"xai_localisation.{hashlib.sha256(key.encode()).hexdigest()[:12]}.jsonl"
    reused = len(checkpoint.read_text().splitlines()) if checkpoint is not None and checkpoint.is_file() else 0
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    deadline = start_wall + 60 * budget_minutes if budget_minutes else None
    records = (scorer or score_scans)(model, scans, methods, options, seed, road, progress=progress,
                                      checkpoint=checkpoint, deadline=deadline)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    return {
        "schema_version": LOCALISATION_SCHEMA,
        "model": card.name,
        "split": split,
        "n_images": len(records),
        "n_requested": n,
        "budget_minutes": budget_minutes,
        "seed": seed,
        "command": "",
        "explained_class": "true class (the tumour the mask marks)",
        "unseen_definition": "no Training scan with the same source_image in the masks' index.csv "
                             "(identical or mirrored copies of the same source slice count as seen)",
        "methods": methods,
        "method_labels": {m: get_spec(m).label for m in methods},
        "method_options": recorded_options,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "references": {k: v[0] for k, v in LOCALISATION_REFERENCE_MAPS.items()},
        "metrics": {**{k: {"label": s.label, "higher_is_better": s.higher_is_better, "description": s.description}
                       for k, s in LOCALISATION.items()},
                    **({k: {"label": METRICS[k].label, "higher_is_better": METRICS[k].higher_is_better,
                            "description": METRICS[k].description} for k in ROAD_METRICS} if road else {})},
        "records_reused": reused,  # from an earlier, interrupted run: wall/CPU seconds cover the rest only
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "engine": engine_name(model),
        "summary": summarise(records, card.class_names),
        "records": records,
    }


def save_localisation(model_dir: str | Path, results: dict[str, Any] | LocalisationRecord) -> Path:
    """Write `xai_localisation.json` into the model folder, checked first by reading it as the typed record."""
    record = results if isinstance(results, LocalisationRecord) else LocalisationRecord.from_json(results)
    return atomic_write_text(Path(model_dir) / LOCALISATION_FILE,
                             json.dumps(record.to_json(), indent=1, default=float) + "\n")


def load_localisation(model_dir: str | Path) -> LocalisationRecord | None:
    """The saved localisation evaluation of a model folder, or None."""
    path = Path(model_dir) / LOCALISATION_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExplainError(f"{path} is not valid JSON ({exc}); rerun `python -m core xai-eval --localisation`") from exc
    try:
        return LocalisationRecord.from_json(raw)
    except ExplainError as exc:
        raise ExplainError(f"{path}: {exc}") from exc
