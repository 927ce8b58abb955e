"""`python -m core report FILE... --case-id ID --out REPORT.pdf [--methods scorecam,shap,lime]`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from core.cli.common import model_arg
from core.errors import ImageDecodeError
from core.io.atomic import atomic_write_bytes


def cmd_report(args: argparse.Namespace) -> int:
    from core.model.factory import load_model
    from core.report.case import make_case_report, parse_methods
    from core.report.model_info import model_info
    from core.store.audit import AuditStore
    from core.store.cases import validate_case_id

    case_id = validate_case_id(args.case_id)
    methods = parse_methods(args.methods)
    files = {}
    for file in args.files:
        try:
            files[file] = Path(file).read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"{file}: cannot open file ({exc.strerror or exc})") from exc
    out = Path(args.out)
    if not out.parent.is_dir():
        raise ImageDecodeError(f"cannot write {out}: the folder {out.parent} does not exist")
    model, card = load_model(args.model)
    pdf, report = make_case_report(model, card, args.model, files, case_id, methods, args.faithfulness)
    atomic_write_bytes(out, pdf)
    if not args.no_audit:
        store = AuditStore()
        info = model_info(args.model, card)
        store.record("report", case_id, f"cli-{os.getpid()}", {
            "scans": [{"sha256": s.sha256, **s.assessment.audit_record()} for s in report.scans],
            "methods": methods, "series_summary": report.series_summary, "pages": pdf.count(b"/Type /Page") - 1},
            model_hash=info.sha256)
    print(f"{out}: case {case_id}, {len(report.scans)} scan section(s), {len(pdf) / 1024:.0f} KiB", file=sys.stderr)
    return 0


def add_subcommands(sub: Any) -> None:
    """Register `report`."""
    p = sub.add_parser("report", help="a PDF case report: scans, overlays with legends, probabilities, model version")
    p.add_argument("files", nargs="+", help="JPEG/PNG/DICOM files, a DICOM series, a multi-frame DICOM or a zip")
    p.add_argument("--case-id", required=True, help="case identifier (letters, digits, . _ -; no patient details)")
    p.add_argument("--out", required=True, help="the PDF to write")
    p.add_argument("--methods", default="scorecam,shap,lime", help="explanations to include (comma list, or 'none')")
    p.add_argument("--faithfulness", action="store_true", help="also measure deletion/insertion/faithfulness per scan")
    p.add_argument("--no-audit", action="store_true", help="do not record the report in the audit trail")
    model_arg(p)
    p.set_defaults(func=cmd_report)
