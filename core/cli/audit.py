"""`python -m core audit verify [--db URL] [--expect HASH] [--json]` and `audit grant ROLE --db OWNER_URL`."""
from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_verify(args: argparse.Namespace) -> int:
    """Walk the chain; exit 0 when it holds, 1 with the first broken link."""
    from core.store.audit import AuditStore

    store = AuditStore(args.db)
    report = store.verify(args.expect)
    store.dispose()
    print(report.to_json() if args.json else report.summary())
    return 0 if report.ok else 1


def cmd_grant(args: argparse.Namespace) -> int:
    """As the table's owner: create or migrate the table, then let ROLE only SELECT and INSERT."""
    from sqlalchemy import text

    from core.errors import AuditError
    from core.store.audit import AuditStore
    from core.store.ledger import app_role_grants

    store = AuditStore(args.db)
    if store.engine.dialect.name != "postgresql":
        raise AuditError("audit grant is for PostgreSQL stores (a SQLite file is protected by file permissions)")
    with store.engine.begin() as conn:
        for statement in app_role_grants(args.role):
            conn.execute(text(statement))
    store.dispose()
    print(f"{args.role} may now only SELECT and INSERT audit records", file=sys.stderr)
    return 0


def add_subcommands(sub: Any) -> None:
    """Register `audit verify` and `audit grant`."""
    p = sub.add_parser("audit", help="the audit trail's hash chain: verify it; PostgreSQL role set-up")
    group = p.add_subparsers(dest="audit_command", required=True)
    verify = group.add_parser("verify", help="check every record's hash link; exit 1 at the first broken one")
    verify.add_argument("--db", help="SQLAlchemy URL of the store (default: BRAINSCAN_DB_URL or the state folder)")
    verify.add_argument("--expect", help="a head hash kept elsewhere (a backup manifest): it must be in the chain")
    verify.add_argument("--json", action="store_true", help="the report as JSON")
    verify.set_defaults(func=cmd_verify)
    grant = group.add_parser("grant", help="PostgreSQL: let ROLE only SELECT and INSERT (run as the table's owner)")
    grant.add_argument("role")
    grant.add_argument("--db", required=True, help="the owner's SQLAlchemy URL")
    grant.set_defaults(func=cmd_grant)
