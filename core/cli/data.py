"""`python -m core audit-data`: find test scans duplicated in Training and write the leakage-free list."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.cli.common import progress_printer


def cmd_audit_data(args: argparse.Namespace) -> int:
    from core.data.discovery import discover
    from core.data.leakage import UNSEEN_FILE, check_leakage, write_leakage_report

    report = check_leakage(discover(args.dir), args.threshold, progress=progress_printer("hashing"))
    out = write_leakage_report(report, Path(args.out))
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'class':<12}{'test':>6}{'exact':>7}{'near':>6}{'free':>6}{'unseen':>8}")
        for name, row in {**summary["per_class"], "TOTAL": summary["total"]}.items():
            print(f"{name:<12}{row['test']:>6}{row['exact']:>7}{row['near_only']:>6}{row['leakage_free']:>6}"
                  f"{row['unseen']:>8}")
        print(f"strictly unseen test list: {out.parent / UNSEEN_FILE}; leakage-free list: {out}")
    return 0


def add_subcommands(sub: Any) -> None:
    """Register `audit-data`."""
    from core.data.leakage import NEAR_THRESHOLD

    p = sub.add_parser("audit-data",
                       help="group scans by source slice; write the strictly unseen and leakage-free test lists")
    p.add_argument("dir")
    p.add_argument("--out", default="artifacts/audit", help="folder for the two lists and the JSON report")
    p.add_argument("--threshold", type=float, default=NEAR_THRESHOLD, help="thumbnail correlation for a near duplicate")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_data)
