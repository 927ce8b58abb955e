"""The case report as a PDF, drawn with fpdf2.

Why fpdf2: pure Python (no C build, ~1 MB with its few dependencies), embeds TrueType fonts for the
report's Unicode text, takes images straight from PIL/numpy and has a table API; reportlab would do the same
with a much larger API and a C accelerator. The report builder is plain data (`CaseReport`) -> bytes, so the
CLI and the app draw exactly the same report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from fpdf import FPDF
from PIL import Image

from core.model.assessment import Assessment, State, percent
from core.model.card import class_label
from core.report.legend import LEGEND_TEXT
from core.report.model_info import ModelInfo
from core.xai.overlays import colorbar

DISCLAIMER = ("Research use only - not a medical device. Predictions and explanations support, and never "
              "replace, a radiologist's reading.")
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
NOT_AVAILABLE = "not available (the model folder has no fitted gate or calibration: python -m core calibrate)"


@dataclass
class ReportOverlay:
    """One explanation of one scan: the overlay, its legend kind and class, its time, its faithfulness if measured."""

    method: str
    overlay: np.ndarray
    kind: str
    label: str
    seconds: float
    faithfulness: dict[str, float] | None = None
    note: str = ""


@dataclass
class ReportScan:
    """One scan (or slice) of the case as the report shows it: its assessment, and overlays only when answered."""

    title: str
    sha256: str
    image: np.ndarray
    assessment: Assessment
    explained_class: str | None = None
    overlays: list[ReportOverlay] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)


@dataclass
class CaseReport:
    """Everything the PDF prints."""

    case_id: str
    created: datetime
    model: ModelInfo
    scans: list[ReportScan]
    app_version: str
    series_summary: str | None = None
    series_rows: list[tuple[str, float | None, str]] = field(default_factory=list)  # (slice, tumour p, headline)
    notes: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)  # the model's known limits, from its card


class _PDF(FPDF):
    def __init__(self, report: CaseReport) -> None:
        super().__init__(format="A4")
        self.report = report
        self.family = _fonts(self)
        self.set_auto_page_break(True, margin=18)
        self.set_title(f"BrainScan XAI case report {report.case_id}")
        self.set_creator("BrainScan XAI")

    def text_of(self, value: str) -> str:
        """Text the current font can draw (the core-font fallback is Latin-1)."""
        if self.family != "helvetica":
            return value
        return (value.replace("−", "-").replace("—", "-").replace("–", "-").replace("×", "x").replace("≥", ">=")
                .encode("latin-1", "replace").decode("latin-1"))

    def header(self) -> None:
        self.set_font(self.family, "B", 9)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self.text_of(f"BrainScan XAI - case {self.report.case_id}"), align="L")
        self.cell(0, 5, self.text_of(self.report.created.strftime("%Y-%m-%d %H:%M UTC")), align="R",
                  new_x="LMARGIN", new_y="NEXT")
        self.ln(2)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(self.family, "", 7.5)
        self.set_text_color(90, 90, 90)
        self.multi_cell(0, 3.5, self.text_of(f"{DISCLAIMER}   Page {self.page_no()}/{{nb}}"), align="C")
        self.set_text_color(0, 0, 0)




def _fonts(pdf: FPDF) -> str:
    """DejaVu Sans (Unicode) when installed, else the core Helvetica."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            pdf.add_font("dejavu", "", str(regular))
            pdf.add_font("dejavu", "B", str(bold))
            return "dejavu"
    return "helvetica"


def _heading(pdf: _PDF, text: str, size: float = 12) -> None:
    pdf.set_font(pdf.family, "B", size)
    pdf.multi_cell(0, size * 0.5, pdf.text_of(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _line(pdf: _PDF, text: str, size: float = 9, bold: bool = False) -> None:
    pdf.set_font(pdf.family, "B" if bold else "", size)
    pdf.multi_cell(0, size * 0.5, pdf.text_of(text), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: _PDF, rows: list[list[str]], widths: tuple[float, ...] | None = None, size: float = 8.5) -> None:
    pdf.set_font(pdf.family, "", size)
    with pdf.table(col_widths=widths, width=sum(widths) if widths else pdf.epw, align="LEFT", text_align="LEFT",
                   line_height=size * 0.55, first_row_as_headings=True, padding=1) as table:
        for row in rows:
            cells = table.row()
            for value in row:
                cells.cell(pdf.text_of(value))
    pdf.ln(2)


def _case_page(pdf: _PDF, report: CaseReport) -> None:
    _heading(pdf, "Case report", 16)
    model = report.model
    _table(pdf, [["Case", "Generated", "Scans", "App version"],
                 [report.case_id, report.created.strftime("%Y-%m-%d %H:%M:%S UTC"), str(len(report.scans)),
                  report.app_version]])
    _heading(pdf, "Model")
    _table(pdf, [["Name", "Version", "Backbone", "Input"],
                 [model.name, model.version, model.backbone, f"{model.image_size} px"]], (80, 35, 45, 20))
    _line(pdf, f"Version = the first 12 hex digits of the model file's SHA-256: {model.sha256}", 7.5)
    pdf.ln(2)
    if model.metrics:
        _table(pdf, [list(model.metrics), [f"{v:.4f}" for v in model.metrics.values()]])
    for note in report.notes:
        _line(pdf, note, 8.5)
    if report.limits:
        _heading(pdf, "Known limits of this model", 10)
        for limit in report.limits:
            _line(pdf, limit, 8.5)
    if report.series_summary:
        _heading(pdf, "Series")
        _line(pdf, report.series_summary, 9.5, bold=True)
        pdf.ln(1)
        if report.series_rows:
            _table(pdf, [["Slice", "Tumour probability", "Assessment"]]
                   + [[s, "-" if p is None else percent(p), c] for s, p, c in report.series_rows], (45, 35, 100))


def _image(pdf: _PDF, picture: np.ndarray, x: float, y: float, width: float) -> float:
    """Place an RGB image at (x, y) with the given width; returns its height in mm."""
    height = width * picture.shape[0] / picture.shape[1]
    pdf.image(Image.fromarray(np.asarray(picture, np.uint8)), x=x, y=y, w=width, h=height)
    return height


def _legend(pdf: _PDF, overlay: ReportOverlay, x: float, y: float, width: float) -> float:
    """The overlay's colour bar and end labels under it; returns the height used in mm. Labels that do not fit
    beside each other (and beside the centre's "0" of a signed map) go on lines of their own."""
    bar = colorbar("heatmap" if overlay.kind == "heatmap" else "signed", 256, 8)
    pdf.image(Image.fromarray(bar), x=x, y=y, w=width, h=2.5)
    left, right = (pdf.text_of(t.format(label=overlay.label)) for t in LEGEND_TEXT[overlay.kind])
    pdf.set_font(pdf.family, "", 6.5)
    signed = overlay.kind != "heatmap"
    gap = pdf.get_string_width("  0  ") / 2 if signed else pdf.get_string_width("  ")
    fits = max(pdf.get_string_width(left), pdf.get_string_width(right)) <= width / 2 - gap
    lines = [[(left, "L"), ("0", "C"), (right, "R")] if signed else [(left, "L"), (right, "R")]] if fits else \
        [[(left, "L")], *([[("0", "C")]] if signed else []), [(right, "R")]]
    for row, texts in enumerate(lines):
        for text, align in texts:
            pdf.set_xy(x, y + 2.8 + 3 * row)
            pdf.cell(width, 3, text, align=align)
    return 3.5 + 3 * len(lines)


def _scan_section(pdf: _PDF, scan: ReportScan) -> None:
    """One scan's page(s): the scan beside its assessment, its explanations, its DICOM header."""
    pdf.add_page()
    _heading(pdf, scan.title, 13)
    _line(pdf, f"Scan SHA-256: {scan.sha256}", 7.5)
    pdf.ln(1)
    _assessment(pdf, scan)
    if scan.overlays:
        _explanations(pdf, scan)
    if scan.header:
        pdf.ln(1)
        _heading(pdf, "DICOM technical header", 10)
        _table(pdf, [["Field", "Value"]] + [[k, v] for k, v in scan.header.items()], (60, 120), 7.5)


def _assessment(pdf: _PDF, scan: ReportScan) -> None:
    """The scan on the left; the answer, the gate and the class probabilities on its right."""
    answer = scan.assessment
    top = pdf.get_y()
    side = 62.0
    _image(pdf, scan.image, pdf.l_margin, top, side)
    right = pdf.l_margin + side + 6
    pdf.set_left_margin(right)
    pdf.set_xy(right, top)
    _line(pdf, answer.headline, 11, bold=True)
    if answer.state is not State.REFUSED:  # a refusal's reason is the gate line below
        _line(pdf, f"Assessment: {answer.state_text}", 9)
        for warning in answer.warnings:
            _line(pdf, warning, 8.5)
        _line(pdf, "Prediction set: " + (answer.set_text() or NOT_AVAILABLE), 8.5)
    _line(pdf, "Input gate: " + answer.gate_text(), 8.5)
    pdf.ln(2)
    if answer.probabilities:
        kind = "calibrated probability" if answer.calibrated_model else "probability (not calibrated)"
        _table(pdf, [["Class", kind.capitalize()]]
               + [[class_label(c) + (" (most probable)" if c == answer.predicted else ""), percent(p)]
                  for c, p in answer.probabilities.items()], (70, 40))
    pdf.set_left_margin(10)
    pdf.set_xy(pdf.l_margin, max(pdf.get_y(), top + side * scan.image.shape[0] / scan.image.shape[1]) + 4)


def _explanations(pdf: _PDF, scan: ReportScan) -> None:
    """The explanation overlays, up to three a row with their legends, then their timings and faithfulness."""
    explained = "" if not scan.explained_class else f" of {class_label(scan.explained_class)}" + (
        " (the most probable class, for reference)" if scan.assessment.uncertain else "")
    _heading(pdf, f"Explanations{explained}", 10)
    per_row = min(3, len(scan.overlays))
    width = (pdf.epw - 5 * (per_row - 1)) / per_row
    for start in range(0, len(scan.overlays), per_row):
        row = scan.overlays[start:start + per_row]
        height = max(width * o.overlay.shape[0] / o.overlay.shape[1] for o in row)
        if pdf.get_y() + height + 20 > pdf.page_break_trigger:
            pdf.add_page()
        top = pdf.get_y()
        legend = 0.0
        for i, overlay in enumerate(row):
            x = pdf.l_margin + i * (width + 5)
            pdf.set_xy(x, top)
            pdf.set_font(pdf.family, "B", 9)
            pdf.cell(width, 5, pdf.text_of(f"{overlay.method} · {overlay.seconds:.1f} s"))
            used = _image(pdf, overlay.overlay, x, top + 5, width)
            legend = max(legend, _legend(pdf, overlay, x, top + 5 + used + 1, width))
        pdf.set_xy(pdf.l_margin, top + 5 + height + 2 + legend)
    metric_names = sorted({m for o in scan.overlays for m in (o.faithfulness or {})})
    rows = [["Method", "Seconds"] + (metric_names or ["Faithfulness"])]
    for o in scan.overlays:
        values = [f"{(o.faithfulness or {}).get(m, float('nan')):.3f}" for m in metric_names] if o.faithfulness \
            else ["not measured"] * max(1, len(metric_names))
        rows.append([o.method, f"{o.seconds:.2f}"] + values)
    _table(pdf, rows)
    for o in scan.overlays:
        if o.note:
            _line(pdf, f"{o.method}: {o.note}", 7)


def build_pdf(report: CaseReport) -> bytes:
    """The report as PDF bytes: a case page (case, model, series summary), then one section per scan."""
    pdf = _PDF(report)
    pdf.alias_nb_pages()
    pdf.add_page()
    _case_page(pdf, report)
    for scan in report.scans:
        _scan_section(pdf, scan)
    return bytes(pdf.output())
