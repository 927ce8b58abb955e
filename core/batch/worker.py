"""Scoring one work item with a model loaded once per process: the same functions as `predict` and `explain`.

An image goes through `core.model.inference.classify`; a series through `load_series` and
`core.model.series_assessment.classify_series` (its row carries the most suspicious slice's assessment and the series'
answer). With methods, the scan (the series' top slice) is explained for its most probable class and each
map's summary numbers and overlay PNG are returned. A user-caused error (undecodable file, mixed series)
becomes an error row; anything else is a bug and propagates.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.batch.inputs import WorkItem
from core.batch.rows import MAP_STATS, error_record, record_from_assessment
from core.errors import BrainScanError
from core.io.images import preprocess
from core.io.scan import decode_scan
from core.io.series import load_series
from core.model.engine import engine_name
from core.model.inference import classify
from core.model.series_assessment import classify_series


def limit_threads(cpus: int | None) -> None:
    """Give TensorFlow `cpus` threads (one worker per core group instead of every worker on every core)."""
    if not cpus:
        return
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(cpus))
            tf.config.threading.set_inter_op_parallelism_threads(min(2, int(cpus)))
        except RuntimeError:  # TensorFlow already started in this process: it keeps its pools
            pass


class Scorer:
    """A model folder loaded once (model, card, trust, explainer options), scoring items one by one."""

    def __init__(self, model_dir: str | Path, methods: tuple[str, ...] = (), overlays: bool = False,
                 cpus: int | None = None) -> None:
        from core.model.factory import load_model
        from core.model.trust import load_trust
        from core.quiet import import_tensorflow_quietly, quiet_opencv
        from core.xai.explainers import folder_options

        import_tensorflow_quietly()
        quiet_opencv()
        limit_threads(cpus)
        self.model, self.card = load_model(model_dir)
        self.trust = load_trust(model_dir, self.card.class_names)
        self.methods = tuple(methods)
        self.overlays = overlays
        self.options = {m: folder_options(m, model_dir, self.card.image_size) for m in self.methods}
        self.engine = engine_name(self.model)  # tensorflow, openvino-f32 or openvino-bf16: chosen at load

    def score(self, item: WorkItem) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The item's row values and its overlays ({method: PNG bytes})."""
        start = time.perf_counter()
        if item.kind == "error":
            return error_record(item.key, item.kind, item.sha256, item.error or "unreadable input"), {}
        try:
            if item.kind == "series":
                record, rgb = self._series(item)
            else:
                scan = decode_scan(item.blobs[0], item.key)  # once: the gate and the overlays read it
                assessment = classify(self.model, self.card, scan, trust=self.trust)
                record = record_from_assessment(assessment)
                rgb = None if assessment.refused else scan.rgb
        except BrainScanError as exc:
            record, rgb = error_record(item.key, item.kind, item.sha256, exc), None
        record.update({"key": item.key, "kind": item.kind, "sha256": item.sha256,
                       "status": record.get("status", "ok"), "engine": self.engine,
                       "seconds_classify": time.perf_counter() - start})
        overlays = self._explain(record, rgb) if rgb is not None and self.methods else {}
        record["seconds_total"] = time.perf_counter() - start
        return record, overlays

    def _series(self, item: WorkItem) -> tuple[dict[str, Any], np.ndarray | None]:
        series = load_series(dict(zip(item.names, item.blobs)))
        result = classify_series(self.model, self.card, [s.image for s in series.slices], self.trust,
                                 series.modality)
        top = result.top
        assessment = dataclasses.replace(result.predictions[top], file=item.key)
        record = record_from_assessment(assessment)
        record.update({"n_slices": len(series.slices), "series_top_slice": top + 1,
                       "series_probability": float(result.suspicion[top]),
                       "series_refused_slices": len(result.refused), "series_summary": result.summary()})
        return record, None if assessment.refused else series.slices[top].image

    def _explain(self, record: dict[str, Any], rgb: np.ndarray) -> dict[str, bytes]:
        import cv2

        from core.xai.explainers import explain
        from core.xai.overlays import overlay_for, side_by_side

        image = preprocess(rgb, self.card.image_size, self.card.crop)
        class_index = list(self.card.class_names).index(record["top_class"])
        overlays = {}
        for method in self.methods:
            result = explain(self.model, image, method, class_index, self.card, **self.options[method])
            stats = result.stats()
            record.update({f"{method}_{s}": stats[s] for s in MAP_STATS})
            record.update({f"{method}_class": record["top_class"], f"{method}_seconds": result.seconds})
            if not self.overlays:
                continue
            picture = side_by_side(image.astype(np.uint8), overlay_for(result, image.astype(np.uint8)))
            ok, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            if ok:
                overlays[method] = png.tobytes()
        return overlays
