"""The append-only audit trail: every classification, explanation, report and clinician feedback.

One table, `audit_events`, through SQLAlchemy: SQLite in WAL mode under the state folder by default
(`BRAINSCAN_STATE_DIR`, else `state/` in the repository), or any SQLAlchemy URL in `BRAINSCAN_DB_URL`
(PostgreSQL for a shared deployment). Rows are never updated or deleted: the store has no such call, and a
database trigger refuses UPDATE and DELETE for anyone who tries with SQL. Every row is also a link of a hash
chain (`core.store.chain`, appended by `core.store.ledger`), so a change made around the triggers is detected by
`verify` (`python -m core audit verify`). What a row holds: time (UTC), event,
case id, SHA-256 of the scan's bytes, SHA-256 of the model file, the result as JSON, app version, session id.
No file names and no patient details: `record` refuses result keys that could carry them.
"""
from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from core.errors import AuditError
from core.settings import settings
from core.store.cases import validate_case_id
from core.store.chain import GENESIS_EVENT, ChainReport, verify_rows
from core.store.ledger import SEQ_INDEX, append, prepare, table_rows

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
    Column("chain_seq", Integer),
    Column("content_hash", String(64)),
    Column("prev_hash", String(64)),
    Column("chain_hash", String(64)),
    Index(SEQ_INDEX, "chain_seq", unique=True),
)

def app_version() -> str:
    """The project's version from pyproject.toml (what wrote a record)."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    return match.group(1) if match else "unknown"


def default_url() -> str:
    """BRAINSCAN_DB_URL, else SQLite under BRAINSCAN_STATE_DIR (default: state/ in the repository)."""
    url = settings().db_url
    if url:
        return url
    folder = settings().state_dir
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
            with self._append_transaction() as conn:  # sessions starting together: one migrates
                prepare(conn, audit_events, app_version())
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
                dbapi_connection.isolation_level = None  # SQLAlchemy's begin event below starts transactions

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:  # appends take the write lock first: one chain head at a time
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

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
            with self._append_transaction() as conn:
                return append(conn, audit_events, row)
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot write to the audit store at {self.safe_url}: {str(exc).splitlines()[0]}") from exc

    @contextlib.contextmanager
    def _append_transaction(self) -> Iterator[Connection]:
        """A transaction that holds the write lock from its start (SQLite: BEGIN IMMEDIATE)."""
        with self.engine.connect() as conn:
            conn.execution_options(immediate=True)
            with conn.begin():
                yield conn

    def verify(self, expect: str | None = None) -> ChainReport:
        """Walk the whole chain (a consistent snapshot) and report the first broken link."""
        try:
            with self.engine.connect() as conn, conn.begin():
                return verify_rows(table_rows(conn, audit_events), expect)
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot read the audit store at {self.safe_url}: {str(exc).splitlines()[0]}") from exc

    def records(self, case_id: str | None = None, event_name: str | None = None, scan_hash: str | None = None,
                since: datetime | None = None, limit: int | None = None) -> list[AuditRecord]:
        """Records, newest first, filtered by case id (substring), event, scan hash (prefix) and time."""
        query = (select(*[audit_events.c[c] for c in COLUMNS]).where(audit_events.c.event != GENESIS_EVENT)
                 .order_by(audit_events.c.id.desc()))
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
            return int(conn.execute(select(func.count()).select_from(audit_events)
                                    .where(audit_events.c.event != GENESIS_EVENT)).scalar_one())

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
