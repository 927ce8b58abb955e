"""The audit trail, its hash chain and clinician feedback against real databases: SQLite always, PostgreSQL when it
can start (tampering of every kind, parallel writers, migration of an old store, an INSERT/SELECT-only role)."""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from core.cli.audit import cmd_grant
from core.errors import AuditError, CaseError
from core.store.audit import COLUMNS, AuditStore, app_version, audit_events, records_csv
from core.store.cases import new_case_id, sha256_bytes, validate_case_id
from core.store.chain import HASHED, ChainReport, chain_hash, content_hash
from core.store.feedback import agreement_by_class, disagreements, record_feedback
from core.store.ledger import SEQ_INDEX
from tests import postgres_server

WRITERS, PER_WRITER = 4, 40
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server (skipped with the reason when none can start)."""
    try:
        url, stop = postgres_server.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    yield url
    stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    url = request.getfixturevalue("postgres_url")
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # a fresh table per test (the server lives for the module)
        conn.execute(sqlalchemy.text("DROP TABLE IF EXISTS audit_events"))
    engine.dispose()
    return url


# A writer process imports only the store (not pytest or this module), so 4 of them start quickly.
WRITER = f"""
import sys
from core.store.audit import AuditStore
from core.store.cases import sha256_bytes
url, writer = sys.argv[1], int(sys.argv[2])
store = AuditStore(url)
for i in range({PER_WRITER}):
    store.record("classification", f"CASE-{{writer}}", f"session-{{writer}}", {{"predicted_class": "glioma", "i": i}},
                 scan_hash=sha256_bytes(f"{{writer}}-{{i}}".encode()))
store.dispose()
"""


def test_records_round_trip_and_filter(store_url):
    store = AuditStore(store_url)
    first = store.record("classification", "CASE-A", "s1", {"predicted_class": "glioma", "probabilities": {"glioma": 0.9}},
                         scan_hash="ab" * 32, model_hash="cd" * 32)
    store.record("explanation", "CASE-A", "s1", {"method": "scorecam", "seconds": 0.7}, scan_hash="ab" * 32)
    store.record("report", "CASE-B", "s2", {"scans": 1})
    records = store.records()
    assert [r.event for r in records] == ["report", "explanation", "classification"]
    assert records[-1].id == first and records[-1].result["probabilities"] == {"glioma": 0.9}
    assert records[-1].app_version == app_version() and records[-1].model_hash == "cd" * 32
    assert records[-1].recorded_at.tzinfo is not None
    assert [r.event for r in store.records(case_id="CASE-A")] == ["explanation", "classification"]
    assert [r.case_id for r in store.records(event_name="report")] == ["CASE-B"]
    assert len(store.records(scan_hash="abab")) == 2
    csv = records_csv(records).splitlines()
    assert csv[0] == "id,recorded_at,event,case_id,scan_hash,model_hash,result,app_version,session_id"
    assert len(csv) == 4 and "CASE-B" in csv[1]
    store.dispose()


def test_store_is_append_only(store_url):
    store = AuditStore(store_url)
    store.record("classification", "CASE-A", "s1", {"predicted_class": "glioma"})
    for statement in ("UPDATE audit_events SET case_id = 'X'", "DELETE FROM audit_events"):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sqlalchemy.text(statement))
    assert store.count() == 1 and store.records()[0].case_id == "CASE-A"
    store.dispose()


def test_parallel_writers_lose_no_records(store_url):
    AuditStore(store_url).dispose()  # schema first, as the app does at start-up
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, store_url, str(w)], cwd=REPO) for w in range(WRITERS)]
    assert [w.wait(300) for w in workers] == [0] * WRITERS
    store = AuditStore(store_url)
    assert store.count() == WRITERS * PER_WRITER
    report = store.verify()  # one chain: every append linked to the one before it, none forked
    assert report.ok and report.records == WRITERS * PER_WRITER + 1, report.summary()
    for w in range(WRITERS):
        assert sorted(r.result["i"] for r in store.records(case_id=f"CASE-{w}")) == list(range(PER_WRITER))
    store.dispose()


def test_feedback_agreement_and_disagreements(store_url):
    store = AuditStore(store_url)
    classes = ["glioma", "meningioma", "notumor", "pituitary"]
    record_feedback(store, "C1", "s", "a" * 64, "m", "glioma", agree=True)
    record_feedback(store, "C1", "s", "b" * 64, "m", "glioma", agree=False, correct_class="meningioma", note=" cyst? ")
    record_feedback(store, "C2", "s", "c" * 64, "m", "pituitary", agree=False, correct_class="notumor")
    record_feedback(store, "C2", "s", "c" * 64, "m", "pituitary", agree=True)  # changed their mind: counts once
    rows = {r["class"]: r for r in agreement_by_class(store.records(), classes)}
    assert rows["glioma"] == {"class": "glioma", "reviewed": 2, "agreed": 1, "agreement": 0.5}
    assert rows["pituitary"]["agreement"] == 1.0 and rows["notumor"]["agreement"] is None
    diff = disagreements(store.records())
    assert [(d["case_id"], d["predicted_class"], d["correct_class"], d["note"]) for d in diff] == [
        ("C1", "glioma", "meningioma", "cyst?")]
    store.dispose()


def test_sqlite_is_in_wal_mode_and_file_names_are_refused(tmp_path):
    path = tmp_path / "audit.sqlite3"
    store = AuditStore(f"sqlite:///{path}")
    with pytest.raises(ValueError, match="only hashes"):
        store.record("classification", "CASE-A", "s", {"scans": [{"file": "Smith_John.dcm"}]})
    store.record("classification", "CASE-A", "s", {"predicted_class": "glioma"})
    store.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert "Smith" not in str(conn.execute("SELECT * FROM audit_events").fetchall())


def test_case_ids_and_errors(tmp_path, monkeypatch):
    assert validate_case_id("  CASE-001 ") == "CASE-001"
    assert validate_case_id(new_case_id()).startswith("CASE-")
    for bad in ("", "John Smith", "01/02/1960", "x" * 65):
        with pytest.raises(CaseError):
            validate_case_id(bad)
    with pytest.raises(CaseError):
        AuditStore(f"sqlite:///{tmp_path / 'a.sqlite3'}").record("report", "bad id", "s", {})
    with pytest.raises(AuditError, match="cannot open the audit store at postgresql\\+psycopg://u:\\*\\*\\*@"):
        AuditStore("postgresql+psycopg://u:secret@127.0.0.1:1/none")
    monkeypatch.setenv("BRAINSCAN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("BRAINSCAN_DB_URL", raising=False)
    assert AuditStore().url == f"sqlite:///{tmp_path / 'state' / 'audit.sqlite3'}"


def _tamperable(store: AuditStore):
    """A connection of someone who bypasses the append-only triggers (owner of the SQLite file, PG superuser)."""
    conn = store.engine.connect()
    if store.engine.dialect.name == "sqlite":
        for name in ("audit_events_no_update", "audit_events_no_delete"):
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
    else:
        conn.exec_driver_sql("SET session_replication_role = replica")
    conn.exec_driver_sql(f"DROP INDEX {SEQ_INDEX}")
    conn.commit()
    return conn


def _six_records(store: AuditStore) -> list[int]:
    return [store.record("classification", f"CASE-{i}", "s", {"predicted_class": "glioma", "i": i},
                         scan_hash=sha256_bytes(bytes([i]))) for i in range(6)]


def _swap(conn, a: int, b: int) -> None:
    """Exchange every column but the id of records a and b (a reordering)."""
    table = audit_events
    rows = {r["id"]: dict(r) for r in conn.execute(sqlalchemy.select(table).where(table.c.id.in_([a, b]))).mappings()}
    for target, source in ((a, b), (b, a)):
        values = {k: v for k, v in rows[source].items() if k != "id"}
        conn.execute(sqlalchemy.update(table).where(table.c.id == target).values(**values))


def _forge_after(conn, after: int) -> int:
    """Insert a record hashed to follow record `after` (a splice into the chain), at the end of the table."""
    prev = conn.execute(sqlalchemy.select(audit_events).where(audit_events.c.id == after)).mappings().one()
    row = {**{k: prev[k] for k in HASHED}, "result": '{"predicted_class": "notumor"}'}
    content = content_hash(row)
    seq = prev["chain_seq"] + 1
    return int(conn.execute(sqlalchemy.insert(audit_events).values(
        **row, chain_seq=seq, content_hash=content, prev_hash=prev["chain_hash"],
        chain_hash=chain_hash(prev["chain_hash"], content, seq))).inserted_primary_key[0])


@pytest.mark.parametrize("kind", ["edit", "delete", "insert_unhashed", "insert_forged", "reorder"])
def test_every_kind_of_tampering_is_detected_at_its_record(store_url, kind):
    store = AuditStore(store_url)
    ids = _six_records(store)
    good = store.verify()
    assert good.ok and good.verified_up_to == ids[-1] and good.records == 7 and good.legacy_records == 0
    conn = _tamperable(store)
    target = ids[2]
    if kind == "edit":
        conn.execute(sqlalchemy.update(audit_events).where(audit_events.c.id == target)
                     .values(result='{"predicted_class": "notumor"}'))
        broken, words = target, "edited"
    elif kind == "delete":
        conn.execute(sqlalchemy.delete(audit_events).where(audit_events.c.id == target))
        broken, words = ids[3], "deleted, inserted or reordered"
    elif kind == "insert_unhashed":
        broken = int(conn.execute(sqlalchemy.insert(audit_events).values(
            recorded_at=good_time(), event="report", case_id="CASE-X", result="{}", app_version="x",
            session_id="s")).inserted_primary_key[0])
        words = "no chain hash"
    elif kind == "insert_forged":
        broken, words = _forge_after(conn, target), "does not follow"
    else:
        _swap(conn, target, ids[3])
        broken, words = target, "deleted, inserted or reordered"
    conn.commit()
    conn.close()
    report = store.verify()
    assert not report.ok and report.broken_id == broken and words in report.problem, report.summary()
    assert report.verified_up_to == (ids[-1] if kind.startswith("insert") else ids[1])
    assert ChainReport.from_json(report.to_json()) == report
    store.dispose()


def good_time():
    from datetime import datetime, timezone

    return datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_head_kept_elsewhere_must_stay_in_the_chain(tmp_path):
    store = AuditStore(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    _six_records(store)
    head = store.verify().head_hash
    store.record("report", "CASE-Z", "s", {"scans": 1})
    assert store.verify(expect=head).ok
    rewritten = store.verify(expect="f" * 64)
    assert not rewritten.ok and "not in the chain" in rewritten.problem
    store.dispose()


def _old_format_store(path) -> None:
    """A store as the app wrote it before the chain: the same table without the chain columns, and its triggers."""
    old = sqlalchemy.MetaData()
    table = sqlalchemy.Table("audit_events", old, *[c._copy() for c in audit_events.columns if c.name in COLUMNS])
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        old.create_all(conn)
        for i in range(5):
            conn.execute(sqlalchemy.insert(table).values(
                recorded_at=good_time(), event="classification", case_id=f"OLD-{i}", scan_hash=sha256_bytes(bytes([i])),
                model_hash=None, result=f'{{"i": {i}}}', app_version="0.9", session_id="old"))
        conn.exec_driver_sql("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                             "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END")
    engine.dispose()


def test_an_old_store_migrates_to_a_chain_that_covers_its_old_records(tmp_path):
    path = tmp_path / "old.sqlite3"
    _old_format_store(path)
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(path, copy)  # migrate a copy, as an operator would try first
    store = AuditStore(f"sqlite:///{copy}")
    store.record("report", "NEW-1", "s", {"scans": 1})
    report = store.verify()
    assert report.ok and report.legacy_records == 5 and report.genesis_id == 6 and report.verified_up_to == 7
    assert store.count() == 6 and [r.case_id for r in store.records()][-1] == "OLD-0"  # genesis is not an event
    AuditStore(f"sqlite:///{copy}").dispose()  # opening again adds nothing
    assert store.verify().records == 7
    store.dispose()
    with sqlite3.connect(copy) as conn:  # an edit of a record older than the chain is detected at the genesis
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET result = '{\"i\": 9}' WHERE id = 2")
    report = AuditStore(f"sqlite:///{copy}").verify()
    assert not report.ok and report.broken_id == 6 and "before the genesis were changed" in report.problem
    assert "chain_seq" not in {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(audit_events)")}


def test_postgres_app_role_may_only_insert_and_select(postgres_url):
    owner = sqlalchemy.create_engine(postgres_url)
    with owner.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS audit_events")
        conn.exec_driver_sql("DROP ROLE IF EXISTS brainscan_app")
        conn.exec_driver_sql("CREATE ROLE brainscan_app LOGIN")
    owner.dispose()
    assert cmd_grant(argparse.Namespace(role="brainscan_app", db=postgres_url)) == 0
    app_url = postgres_url.replace("//postgres@", "//brainscan_app@")
    store = AuditStore(app_url)  # opens without DDL rights: the schema is current
    store.record("report", "CASE-R", "s", {"scans": 1})
    assert store.verify().ok and store.count() == 1
    for statement in ("UPDATE audit_events SET case_id = 'X'", "DELETE FROM audit_events", "TRUNCATE audit_events",
                      "DROP TRIGGER audit_events_no_change ON audit_events",
                      "ALTER TABLE audit_events DISABLE TRIGGER USER", "DROP TABLE audit_events",
                      "CREATE TABLE shadow (id int)"):
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied|must be owner"), \
                store.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert store.verify().ok and store.count() == 1
    store.dispose()
