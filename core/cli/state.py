"""`python -m core state backup DIR` / `state restore DIR [--force]`: the audit store (cases, feedback), verified."""
from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_backup(args: argparse.Namespace) -> int:
    from core.store.audit import default_url
    from core.store.backup import backup

    manifest = backup(args.db or default_url(), args.dir)
    print(f"{args.dir}: {manifest.records} records, chain verified up to record {manifest.verified_up_to}, "
          f"head {manifest.head_hash}", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from core.store.audit import default_url
    from core.store.backup import restore

    manifest = restore(args.dir, args.db or default_url(), force=args.force)
    print(f"restored {manifest.records} records from {args.dir} (backup of {manifest.created_at}); chain verified "
          f"up to record {manifest.verified_up_to}", file=sys.stderr)
    return 0


def add_subcommands(sub: Any) -> None:
    """Register `state backup` and `state restore`."""
    p = sub.add_parser("state", help="back up or restore the audit store (cases, feedback), verified by its chain")
    group = p.add_subparsers(dest="state_command", required=True)
    for name, func, text in (("backup", cmd_backup, "a verified copy of the store in a new folder DIR"),
                             ("restore", cmd_restore, "check the backup in DIR, copy it over the store, verify")):
        q = group.add_parser(name, help=text)
        q.add_argument("dir")
        q.add_argument("--db", help="SQLAlchemy URL of the store (default: BRAINSCAN_DB_URL or the state folder)")
        if name == "restore":
            q.add_argument("--force", action="store_true", help="replace a store that holds records (kept beside)")
        q.set_defaults(func=func)
