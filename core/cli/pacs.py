"""`python -m core pacs search|classify`: work from a PACS over DICOMweb (BRAINSCAN_PACS_URL and credentials).

`search` lists the matching studies and their series. `classify --study UID [--series UID]` retrieves one series
and classifies it through the upload's series path; `--json` prints one object per slice exactly as
`predict --json` does. `--send` (explicit, never the default) stores the structured report, the overlays and the
PDF in the source study with STOW-RS and records what was sent in the audit trail (UIDs hashed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from core.cli.common import model_arg, progress_printer


def _series_line(s: Any) -> str:
    return (f"    series {s.number if s.number is not None else '-'}: {s.modality or '?'} "
            f"{s.description or ''} · {s.plane or 'plane unknown'} · {s.instance_count} instances  {s.series_uid}")


def cmd_search(args: argparse.Namespace) -> int:
    from core.pacs.query import list_series, search_studies
    from core.report.pacs_case import configured

    connection = configured()
    studies = search_studies(connection, limit=args.limit, patient_id=args.patient_id, accession=args.accession,
                             date_from=args.date_from, date_to=args.date_to, study_uid=args.study)
    if not studies:
        print(f"no study matches on {connection.describe}", file=sys.stderr)
    for study in studies:
        series = list_series(connection, study.study_uid)
        if args.json:
            print(json.dumps({**vars(study), "series": [vars(s) for s in series]}))
            continue
        print(f"{study.date or '-'}  {study.accession or '-'}  {study.description or ''} "
              f"[{', '.join(study.modalities)}]  {study.study_uid}")
        for s in series:
            print(_series_line(s))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from core.model.factory import load_model
    from core.report.case import parse_methods
    from core.report.pacs_case import classify_pacs_series, configured, prepare_results, send_results
    from core.store.cases import new_case_id, validate_case_id

    case_id = validate_case_id(args.case_id) if args.case_id else new_case_id()
    methods = parse_methods(args.methods)
    connection = configured()
    model, card = load_model(args.model)
    case = classify_pacs_series(connection, model, card, args.model, args.study, args.series,
                                progress_printer("retrieving"))
    for i, assessment in enumerate(case.result.predictions):
        if args.json:
            print(json.dumps(assessment.to_dict()))
        else:
            print(f"{case.series.slices[i].label}: {assessment.headline} [{assessment.state.value}]")
    print(case.result.summary(), file=sys.stderr)
    if not args.send:
        print("nothing sent to the PACS (add --send to store the results)", file=sys.stderr)
        return 0
    outgoing = prepare_results(case, model, card, args.model, case_id, methods)
    record = send_results(connection, case, outgoing)
    _audit(case_id, outgoing, record, args.no_audit)
    for line in outgoing.describe():
        print(f"sent: {line}", file=sys.stderr)
    return 0


def _audit(case_id: str, outgoing: Any, record: dict[str, Any], skip: bool) -> None:
    from core.store.audit import AuditStore

    if not skip:
        AuditStore().record("report", case_id, f"cli-{os.getpid()}", record,
                            model_hash=outgoing.report.model.sha256)


def add_subcommands(sub: Any) -> None:
    """Register `pacs search` and `pacs classify`."""
    pacs = sub.add_parser("pacs", help="search a PACS, classify one of its series, send the results back (DICOMweb)")
    actions = pacs.add_subparsers(dest="pacs_command", required=True)
    s = actions.add_parser("search", help="studies by patient id, accession, date range or study UID, with their series")
    s.add_argument("--patient-id")
    s.add_argument("--accession")
    s.add_argument("--from", dest="date_from", help="first study date, YYYYMMDD")
    s.add_argument("--to", dest="date_to", help="last study date, YYYYMMDD")
    s.add_argument("--study", help="Study Instance UID")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true", help="one JSON object per study")
    s.set_defaults(func=cmd_search)
    c = actions.add_parser("classify", help="retrieve one series and classify it; --send stores the results")
    c.add_argument("--study", required=True, help="Study Instance UID")
    c.add_argument("--series", help="Series Instance UID (default: the study's only MR series)")
    c.add_argument("--send", action="store_true", help="store the SR, overlays and PDF in the study (STOW-RS)")
    c.add_argument("--case-id", help="case identifier for the report (default: a generated one)")
    c.add_argument("--methods", default="scorecam", help="explanations sent as overlays (comma list, or 'none')")
    c.add_argument("--no-audit", action="store_true", help="do not record the sending in the audit trail")
    c.add_argument("--json", action="store_true", help="one JSON object per slice, as `predict --json`")
    model_arg(c)
    c.set_defaults(func=cmd_classify)
