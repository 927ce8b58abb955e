"""A case report from files: classify, explain the chosen methods, draw overlays with legends, build the PDF.

`report_scan` turns one scan's results (however they were computed: the app passes its cached ones) into the
report's data; `make_case_report` computes everything for the CLI. A DICOM series (several DICOM files, a
multi-frame file or a zip) is reported as a series: the summary with its rule, every slice's tumour
probability, and the most suspicious slices in full.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.io.images import preprocess, read_image
from core.io.series import expand_archives, header_of, is_dicom, load_series
from core.model.card import ModelCard, class_label
from core.model.inference import classify
from core.model.series import classify_series
from core.model.trust import load_trust
from core.report.model_info import model_info
from core.report.pdf import CaseReport, ReportOverlay, ReportScan, build_pdf
from core.store.audit import app_version
from core.store.cases import sha256_bytes, validate_case_id
from core.xai.explainers import EXPLAINERS, Explanation, explain, get_spec
from core.xai.explainers.background import folder_options
from core.xai.metrics import METRICS, evaluate_map
from core.xai.overlays import overlay_for, overlay_kind

DEFAULT_METHODS = ("scorecam", "shap", "lime")
TOP_SLICES = 3
REPORT_SIDE = 384  # pixels of the longest side of scans and overlays in the PDF


def parse_methods(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """Method names from 'scorecam,shap' or a list, each checked against the registry; '' or 'none' = none."""
    names = [m.strip() for m in (value.split(",") if isinstance(value, str) else value) if m.strip()]
    if names in (["none"], []):
        return []
    for name in names:
        get_spec(name)
    return names


def _fit(image: np.ndarray, side: int = REPORT_SIDE) -> np.ndarray:
    import cv2

    scale = side / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def report_scan(title: str, sha256: str, image: np.ndarray, probabilities: dict[str, float],
                explanations: dict[str, Explanation], class_names: list[str], alpha: float = 0.45,
                faithfulness: dict[str, dict[str, float]] | None = None, prediction_set: list[str] | None = None,
                gate_status: str | None = None, header: dict[str, str] | None = None) -> ReportScan:
    """One scan's results as the report shows them (overlays drawn on the scan, each with its legend)."""
    base = _fit(np.asarray(image, np.uint8))
    overlays = []
    explained = None
    for method, explanation in explanations.items():
        explained = class_names[explanation.class_index]
        label = EXPLAINERS[method].label if method in EXPLAINERS else method
        overlays.append(ReportOverlay(label, overlay_for(explanation, base, alpha), overlay_kind(explanation),
                                      class_label(explained), explanation.seconds, (faithfulness or {}).get(method),
                                      explanation.note))
    return ReportScan(title, sha256, base, dict(probabilities), explained, overlays, prediction_set, gate_status,
                      dict(header or {}))


def _explain_all(model: Any, card: ModelCard, model_dir: str | Path, image: np.ndarray, methods: list[str],
                 measure: bool) -> tuple[dict[str, Explanation], dict[str, dict[str, float]]]:
    explanations, faithfulness = {}, {}
    for method in methods:
        explanation = explain(model, image, method, card=card, **folder_options(method, model_dir, card.image_size))
        explanations[method] = explanation
        if measure:
            results = evaluate_map(model, image, explanation.map, explanation.class_index, seed=0)
            faithfulness[method] = {METRICS[m].label: float(r.value) for m, r in results.items()}
    return explanations, faithfulness


def make_case_report(model: Any, card: ModelCard, model_dir: str | Path, files: dict[str, bytes], case_id: str,
                     methods: list[str] | tuple[str, ...] = DEFAULT_METHODS, measure_faithfulness: bool = False,
                     alpha: float = 0.45) -> tuple[bytes, CaseReport]:
    """The PDF (bytes) and its data for the given files (name -> bytes; zips are unpacked)."""
    case_id = validate_case_id(case_id)
    methods = parse_methods(list(methods))
    files = expand_archives(files)
    if not files:
        raise ExplainError("no files to report on")
    names = list(card.class_names)
    dicoms = [n for n, d in files.items() if is_dicom(d)]
    series_like = len(dicoms) > 1 or (len(dicoms) == 1 and "Frames" in header_of(files[dicoms[0]], dicoms[0]))
    report = CaseReport(validate_case_id(case_id), datetime.now(timezone.utc), model_info(model_dir, card), [],
                        app_version())
    if series_like:
        series = load_series(files)
        result = classify_series(model, card, [s.image for s in series.slices], load_trust(model_dir, card.class_names),
                                 series.modality)
        report.series_summary = result.summary() + f" Slices ordered by {series.ordered_by}."
        report.series_rows = [(series.slices[i].label, float(result.suspicion[i]), result.predicted(i))
                              for i in range(len(series.slices))]
        for i in result.ranking[:TOP_SLICES]:
            s = series.slices[i]
            scan = preprocess(s.image, card.image_size, card.crop)
            explanations, faithfulness = _explain_all(model, card, model_dir, scan,
                                                      methods, measure_faithfulness)
            report.scans.append(report_scan(
                f"{s.label} of {len(series.slices)} (rank {result.ranking.index(i) + 1} by tumour probability)",
                s.sha256, s.image, dict(zip(names, map(float, result.probabilities[i]))), explanations, names, alpha,
                faithfulness, header=series.header))
    else:
        trust = load_trust(model_dir, card.class_names)
        for number, (name, data) in enumerate(files.items(), start=1):
            rgb = read_image(data, name)
            image = preprocess(rgb, card.image_size, card.crop)
            answer = classify(model, card, data, name, trust=trust)   # the gate, calibration and set of the app
            explanations, faithfulness = _explain_all(model, card, model_dir, image, methods, measure_faithfulness)
            gate = (f"refused: {answer.refusal}" if answer.refusal else "accepted (looks like the scans it knows)"
                    if trust is not None else None)
            report.scans.append(report_scan(f"Scan {number}", sha256_bytes(data), rgb, answer.probabilities,
                                            explanations, names, alpha, faithfulness,
                                            prediction_set=answer.prediction_set if trust is not None else None,
                                            gate_status=gate, header=header_of(data, name)))
    return build_pdf(report), report
