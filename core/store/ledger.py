"""The audit table's schema and its one append path: create or migrate the table, then chain every record.

Appends are serialised so concurrent writers (threads, app processes, the CLI) keep one chain: on SQLite the
append runs in a `BEGIN IMMEDIATE` transaction (the engine's `immediate` execution option, see
`core.store.audit`), on PostgreSQL it takes a transaction-level advisory lock, which any role may take, so an
app role that may only INSERT and SELECT can still append. The chain head is read, the record hashed and
inserted in the same transaction; a unique index on the chain position refuses a fork if the lock is bypassed.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Table, insert, inspect, select, text

from core.store.chain import GENESIS_EVENT, ZERO, chain_hash, content_hash, legacy_digest

CHAIN_LOCK = 724042
SCHEMA_LOCK = 724041
CHAIN_COLUMNS = {"chain_seq": "INTEGER", "content_hash": "VARCHAR(64)", "prev_hash": "VARCHAR(64)",
                 "chain_hash": "VARCHAR(64)"}
SEQ_INDEX = "ix_audit_events_chain_seq"

_SQLITE_TRIGGERS = {
    "audit_events_no_update": "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                              "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "audit_events_no_delete": "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
                              "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
}
_PG_FUNCTION = ("CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql")
_PG_TRIGGERS = {
    "audit_events_no_change": "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
                              "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "audit_events_no_truncate": "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
                                "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
}


def prepare(conn: Connection, table: Table, version: str) -> None:
    """Create the table, or migrate an older one (chain columns, index, triggers, genesis); no DDL when current.

    Runs under the schema lock (PostgreSQL) or an immediate transaction (SQLite), so processes starting together
    migrate once. When nothing is missing it only reads, so a role without DDL rights can open the store."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"))
    table.metadata.create_all(conn, tables=[table])
    inspector = inspect(conn)
    present = {column["name"] for column in inspector.get_columns(table.name)}
    for name, sql_type in CHAIN_COLUMNS.items():
        if name not in present:
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {sql_type}"))
    if SEQ_INDEX not in {index["name"] for index in inspector.get_indexes(table.name)}:
        conn.execute(text(f"CREATE UNIQUE INDEX {SEQ_INDEX} ON {table.name} (chain_seq)"))
    _triggers(conn)
    if conn.execute(select(table.c.id).where(table.c.chain_seq.is_not(None)).limit(1)).first() is None:
        _genesis(conn, table, version)


def _triggers(conn: Connection) -> None:
    """The append-only triggers that are missing (PostgreSQL also refuses TRUNCATE)."""
    if conn.dialect.name == "sqlite":
        have = {row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
        missing = [sql for name, sql in _SQLITE_TRIGGERS.items() if name not in have]
    elif conn.dialect.name == "postgresql":
        have = {row[0] for row in conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))}
        missing = [sql for name, sql in _PG_TRIGGERS.items() if name not in have]
        missing = [_PG_FUNCTION, *missing] if missing else []
    else:
        missing = []
    for statement in missing:
        conn.execute(text(statement))


def _genesis(conn: Connection, table: Table, version: str) -> None:
    """Start the chain: a genesis record holding the count and digest of the records written before it."""
    count, digest = legacy_digest(table_rows(conn, table))
    result = json.dumps({"legacy_digest": digest, "legacy_records": count}, sort_keys=True)
    append(conn, table, {"recorded_at": datetime.now(timezone.utc), "event": GENESIS_EVENT,
                         "case_id": "chain-genesis", "scan_hash": None, "model_hash": None, "result": result,
                         "app_version": version, "session_id": "store"})


def append(conn: Connection, table: Table, row: Mapping[str, Any]) -> int:
    """Insert one record linked to the chain head (call inside the append transaction); returns its id."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"))
    head = conn.execute(select(table.c.chain_seq, table.c.chain_hash).where(table.c.chain_seq.is_not(None))
                        .order_by(table.c.chain_seq.desc()).limit(1)).first()
    seq, prev = (0, ZERO) if head is None else (head.chain_seq + 1, head.chain_hash)
    content = content_hash(row)
    values = {**row, "chain_seq": seq, "content_hash": content, "prev_hash": prev,
              "chain_hash": chain_hash(prev, content, seq)}
    return int(conn.execute(insert(table).values(**values)).inserted_primary_key[0])


def table_rows(conn: Connection, table: Table) -> Iterator[Mapping[str, Any]]:
    """Every record in id order, streamed (what verification and the genesis digest read)."""
    yield from conn.execute(select(table).order_by(table.c.id).execution_options(yield_per=1000)).mappings()


def app_role_grants(role: str) -> list[str]:
    """SQL (run by the table's owner) that lets a PostgreSQL role only read and append audit records.

    The role gets SELECT and INSERT on the table and the id sequence, nothing else: no UPDATE, DELETE or
    TRUNCATE (the triggers refuse those too, but the role also cannot drop the triggers, alter or drop the table,
    since only the owner may). Advisory locks need no grant, so the role can still append to the chain."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"role name {role!r}: use lower-case letters, digits and _")
    return [f"REVOKE ALL ON audit_events FROM {role}",
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT, INSERT ON audit_events TO {role}",
            f"GRANT USAGE, SELECT ON SEQUENCE audit_events_id_seq TO {role}",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC"]
