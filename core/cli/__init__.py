"""`python -m core`: one module per command group (predict, evaluate, calibrate, data, xai, report) over a shared `common`.

User errors print one line `error: ...` and exit non-zero; they never show a traceback.
"""
from __future__ import annotations

import argparse
import sys

from core.cli import audit, batch, calibrate, data, evaluate, pacs, predict, report, state, xai
from core.errors import BrainScanError

COMMAND_GROUPS = (predict, evaluate, calibrate, data, xai, report, batch, audit, state, pacs)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, in the order of COMMAND_GROUPS."""
    parser = argparse.ArgumentParser(prog="python -m core", description="BrainScan XAI engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, run one command, and turn a user error into one line on stderr (exit 2)."""
    from core.quiet import import_tensorflow_quietly, quiet_opencv

    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
    quiet_opencv()
    try:
        return args.func(args)
    except BrainScanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
