"""The append-only audit trail: every classification, explanation, report and clinician feedback.

One table, `audit_events`, through SQLAlchemy: SQLite in WAL mode under the state folder by default
(`BRAINSCAN_STATE_DIR`, else `state/` in the repository), or any SQLAlchemy URL in `BRAINSCAN_DB_URL`
(PostgreSQL for a shared deployment). Rows are never updated or deleted: the store has no such call, and a
database trigger refuses UPDATE and DELETE for anyone who tries with SQL. What a row holds: time (UTC), event,
case id, SHA-256 of the scan's bytes, SHA-256 of the model file, the result as JSON, app version, session id.
No file names and no patient details: `record` refuses result keys that could carry them.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from core.errors import AuditError
from core.store.cases import validate_case_id

REPO = Path(__file__).resolve().parents[2]
EVENTS = ("classification", "explanation", "report", "feedback")
FORBIDDEN_RESULT_KEYS = {"file", "filename", "file_name", "name", "path", "patient", "patient_id", "patient_name"}
COLUMNS = ("id", "recorded_at", "event", "case_id", "scan_hash", "model_hash", "result", "app_version", "session_id")

metadata = MetaData()
audit_events = Table(
    "audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("event", String(16), nullable=False, index=True),
    Column("case_id", String(64), nullable=False, index=True),
    Column("scan_hash", String(64), index=True),
    Column("model_hash", String(64)),
    Column("result", Text, nullable=False),
    Column("app_version", String(32), nullable=False),
    Column("session_id", String(64), nullable=False),
)

_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events",
        "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    ],
}


def app_version() -> str:
    """The project's version from pyproject.toml (what wrote a record)."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    return match.group(1) if match else "unknown"


def default_url() -> str:
    """BRAINSCAN_DB_URL, else SQLite under BRAINSCAN_STATE_DIR (default: state/ in the repository)."""
    url = os.environ.get("BRAINSCAN_DB_URL")
    if url:
        return url
    folder = Path(os.environ.get("BRAINSCAN_STATE_DIR", REPO / "state"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'audit.sqlite3'}"


@dataclass(frozen=True)
class AuditRecord:
    """One row as read back."""

    id: int
    recorded_at: datetime
    event: str
    case_id: str
    scan_hash: str | None
    model_hash: str | None
    result: dict[str, Any]
    app_version: str
    session_id: str

    def to_row(self) -> dict[str, Any]:
        row = {c: getattr(self, c) for c in COLUMNS}
        row["result"] = json.dumps(self.result, sort_keys=True)
        return row


def _check_result(result: Any, where: str = "result") -> None:
    """Refuse keys that could hold a file name or patient details (a programming error, not a user one)."""
    if isinstance(result, dict):
        for key, value in result.items():
            if str(key).lower() in FORBIDDEN_RESULT_KEYS:
                raise ValueError(f"audit {where} must not hold {key!r}: only hashes identify scans")
            _check_result(value, f"{where}.{key}")
    elif isinstance(result, (list, tuple)):
        for value in result:
            _check_result(value, where)


class AuditStore:
    """Append-only audit records in one SQL database (safe for several processes and threads)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        try:
            self.engine = self._engine(self.url)
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":  # sessions starting together: one creates the schema
                    conn.execute(text("SELECT pg_advisory_xact_lock(724041)"))
                metadata.create_all(conn)
                for statement in _APPEND_ONLY.get(self.engine.dialect.name, []):
                    conn.execute(text(statement))
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot open the audit store at {self.safe_url}: {exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0]}") from exc

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden (for messages)."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    @staticmethod
    def _engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _wal(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=60000")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

            return engine
        return create_engine(url, pool_pre_ping=True)

    def record(self, event_name: str, case_id: str, session_id: str, result: dict[str, Any],
               scan_hash: str | None = None, model_hash: str | None = None) -> int:
        """Append one record; returns its id."""
        if event_name not in EVENTS:
            raise ValueError(f"audit event must be one of {EVENTS}, got {event_name!r}")
        _check_result(result)
        row = {"recorded_at": datetime.now(timezone.utc), "event": event_name, "case_id": validate_case_id(case_id),
               "scan_hash": scan_hash, "model_hash": model_hash, "result": json.dumps(result, sort_keys=True, default=str),
               "app_version": app_version(), "session_id": session_id}
        try:
            with self.engine.begin() as conn:
                return int(conn.execute(insert(audit_events).values(**row)).inserted_primary_key[0])
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot write to the audit store at {self.safe_url}: {str(exc).splitlines()[0]}") from exc

    def records(self, case_id: str | None = None, event_name: str | None = None, scan_hash: str | None = None,
                since: datetime | None = None, limit: int | None = None) -> list[AuditRecord]:
        """Records, newest first, filtered by case id (substring), event, scan hash (prefix) and time."""
        query = select(audit_events).order_by(audit_events.c.id.desc())
        if case_id:
            query = query.where(audit_events.c.case_id.contains(case_id, autoescape=True))
        if event_name:
            query = query.where(audit_events.c.event == event_name)
        if scan_hash:
            query = query.where(audit_events.c.scan_hash.startswith(scan_hash, autoescape=True))
        if since:
            query = query.where(audit_events.c.recorded_at >= since)
        if limit:
            query = query.limit(limit)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot read the audit store at {self.safe_url}: {str(exc).splitlines()[0]}") from exc
        return [AuditRecord(**{**row, "result": json.loads(row["result"]),
                               "recorded_at": _utc(row["recorded_at"])}) for row in rows]

    def count(self) -> int:
        """How many records the store holds."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes: they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def records_csv(records: Iterable[AuditRecord]) -> str:
    """Records as CSV text (one row each, result as JSON)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
    writer.writeheader()
    for rec in records:
        row = rec.to_row()
        row["recorded_at"] = rec.recorded_at.isoformat()
        writer.writerow(row)
    return out.getvalue()
