"""A case report from files: classify, explain the chosen methods, draw overlays with legends, build the PDF.

`report_scan` turns one scan's assessment and explanations (however they were computed: the app passes its cached
ones) into the report's data and `case_report` assembles the report: both surfaces call these two, so the PDF
shows exactly the assessment the screen shows. `make_case_report` computes everything for the CLI. A DICOM series
(`core.io.series.series_files`) is reported as a series: the summary with its rule, every slice's assessment and
tumour probability, and the most suspicious slices in full.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ExplainError
from core.io.images import model_view, preprocess
from core.io.scan import decode_scan
from core.io.series import Series, expand_archives, load_series, series_files
from core.model.assessment import Assessment
from core.model.card import ModelCard, class_label
from core.model.inference import classify
from core.model.limits import known_limits
from core.model.series_assessment import SeriesResult, classify_series
from core.model.trust import load_trust
from core.report import REPORT_MAX_SCANS, TOP_SLICES
from core.report.model_info import ModelInfo, model_info
from core.report.pdf import CaseReport, ReportOverlay, ReportScan, build_pdf
from core.store.audit import app_version
from core.store.cases import validate_case_id
from core.xai.explainers import EXPLAINERS, Explanation, explain, folder_options, get_spec
from core.xai.metrics import METRICS, evaluate_map
from core.xai.overlays import overlay_for, overlay_kind

DEFAULT_METHODS = ("scorecam", "shap", "lime")
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


def report_scan(title: str, sha256: str, image: np.ndarray | None, assessment: Assessment,
                explanations: dict[str, Explanation], alpha: float = 0.45,
                faithfulness: dict[str, dict[str, float]] | None = None,
                header: dict[str, str] | None = None) -> ReportScan:
    """One scan's assessment and overlays as the report shows them (each overlay drawn on the scan with its legend).
    A refused scan gets no overlays: its section holds the refusal and its reason only. `image` None (pixels never
    decoded: refused from the DICOM header) draws a grey square."""
    if assessment.refused and explanations:
        raise ExplainError("a refused scan is reported without explanations")
    base = np.full((64, 64, 3), 200, np.uint8) if image is None else _fit(np.asarray(image, np.uint8))
    overlays = []
    explained = None
    for method, explanation in explanations.items():
        explained = assessment.class_names[explanation.class_index]
        label = EXPLAINERS[method].label if method in EXPLAINERS else method
        overlays.append(ReportOverlay(label, overlay_for(explanation, base, alpha), overlay_kind(explanation),
                                      class_label(explained), explanation.seconds, (faithfulness or {}).get(method),
                                      explanation.note))
    return ReportScan(title, sha256, base, assessment, explained, overlays, dict(header or {}))


def series_rows(result: SeriesResult, labels: list[str]) -> list[tuple[str, float | None, str]]:
    """(slice label, tumour probability or None when refused, the slice's headline) for every slice."""
    return [(labels[i], None if a.refused else float(result.suspicion[i]), a.headline)
            for i, a in enumerate(result.predictions)]


def case_report(info: ModelInfo, card: ModelCard, case_id: str, scans: list[ReportScan], total_scans: int,
                series: tuple[SeriesResult, list[str], str] | None = None) -> CaseReport:
    """The one case-report builder (the app and the CLI both call it): the scan sections, the series summary and
    every slice's row when there is a series ((result, slice labels, how the slices were ordered)), a note when the
    report holds fewer scan sections than the case has scans, and the model's known limits from its card."""
    report = CaseReport(validate_case_id(case_id), datetime.now(timezone.utc), info, scans, app_version(),
                        limits=known_limits(card))
    if series is not None:
        result, labels, ordered_by = series
        report.series_summary = result.summary() + f" Slices ordered by {ordered_by}."
        report.series_rows = series_rows(result, labels)
        if len(scans) < len(labels):
            report.notes.append(f"The report shows {len(scans)} of the {len(labels)} slices in full (the most "
                                "suspicious); every slice's assessment is listed in the series table.")
    elif len(scans) < total_scans:
        report.notes.append(f"The report holds {len(scans)} of the case's {total_scans} scans (at most "
                            f"{REPORT_MAX_SCANS} per report); build another report for the others.")
    return report


def _explain_all(model: Any, card: ModelCard, model_dir: str | Path, image: np.ndarray, methods: list[str],
                 measure: bool, assessment: Assessment) -> tuple[dict[str, Explanation], dict[str, dict[str, float]]]:
    """The chosen explanations of the most probable class (none for a refused scan)."""
    explanations: dict[str, Explanation] = {}
    faithfulness: dict[str, dict[str, float]] = {}
    if assessment.refused:
        return explanations, faithfulness
    class_index = list(card.class_names).index(assessment.predicted)
    for method in methods:
        explanation = explain(model, image, method, class_index=class_index, card=card,
                              **folder_options(method, model_dir, card.image_size))
        explanations[method] = explanation
        if measure:
            results = evaluate_map(model, image, explanation.map, explanation.class_index, seed=0)
            faithfulness[method] = {METRICS[m].label: float(r.value) for m, r in results.items()}
    return explanations, faithfulness


def series_sections(model: Any, card: ModelCard, model_dir: str | Path, series: Series, result: SeriesResult,
                    methods: list[str], measure_faithfulness: bool = False,
                    alpha: float = 0.45) -> list[tuple[int, ReportScan]]:
    """(slice index, report section) of the series' most suspicious answered slices (at most TOP_SLICES), each with
    the chosen explanations: what the PDF shows in full, and what the PACS results send as overlays."""
    sections = []
    for i in result.ranking[:TOP_SLICES]:
        s, assessment = series.slices[i], result.predictions[i]
        if assessment.refused:
            continue
        scan = preprocess(s.image, card.image_size, card.crop)
        explanations, faithfulness = _explain_all(model, card, model_dir, scan, methods, measure_faithfulness,
                                                  assessment)
        sections.append((i, report_scan(
            f"{s.label} of {len(series.slices)} (rank {result.ranking.index(i) + 1} by tumour probability)",
            s.sha256, model_view(s.image, card.crop), assessment, explanations, alpha, faithfulness,
            header=series.header)))
    return sections


def make_case_report(model: Any, card: ModelCard, model_dir: str | Path, files: dict[str, bytes], case_id: str,
                     methods: list[str] | tuple[str, ...] = DEFAULT_METHODS, measure_faithfulness: bool = False,
                     alpha: float = 0.45) -> tuple[bytes, CaseReport]:
    """The PDF (bytes) and its data for the given files (name -> bytes; zips are unpacked), computed here through
    the app's path: `classify` (or the series path) for the assessment, then `case_report`."""
    case_id = validate_case_id(case_id)
    methods = parse_methods(list(methods))
    files = expand_archives(files)
    if not files:
        raise ExplainError("no files to report on")
    trust = load_trust(model_dir, card.class_names)
    info = model_info(model_dir, card)
    in_series = series_files(files)
    if in_series:
        if len(in_series) < len(files):
            raise ExplainError(f"{len(files) - len(in_series)} file(s) are not part of the DICOM series; report "
                               "the series and the other files separately")
        series = load_series(in_series)
        result = classify_series(model, card, [s.image for s in series.slices], trust, series.modality)
        scans = [scan for _, scan in series_sections(model, card, model_dir, series, result, methods,
                                                     measure_faithfulness, alpha)]
        report = case_report(info, card, case_id, scans, len(series.slices),
                             (result, [s.label for s in series.slices], series.ordered_by))
    else:
        scans = []
        for number, data in enumerate(list(files.values())[:REPORT_MAX_SCANS], start=1):
            scan = decode_scan(data, f"Scan {number}")  # once: the gate, the picture and the header panel read it
            assessment = classify(model, card, scan, trust=trust)
            explanations, faithfulness = {}, {}
            rgb = None
            if assessment.decoded:
                rgb = model_view(scan.rgb, card.crop)  # the frame the maps are in
                image = preprocess(scan.rgb, card.image_size, card.crop)
                explanations, faithfulness = _explain_all(model, card, model_dir, image, methods,
                                                          measure_faithfulness, assessment)
            scans.append(report_scan(f"Scan {number}", scan.sha256, rgb,
                                     assessment, explanations, alpha, faithfulness, header=dict(scan.header)))
        report = case_report(info, card, case_id, scans, len(files))
    return build_pdf(report), report

