"""The audit trail and clinician feedback against real databases: SQLite always, PostgreSQL when it can start."""
from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
import sqlalchemy

from core.errors import AuditError, CaseError
from core.store.audit import AuditStore, app_version, records_csv
from core.store.cases import new_case_id, sha256_bytes, validate_case_id
from core.store.feedback import agreement_by_class, disagreements, record_feedback
from tests import postgres_server

WRITERS, PER_WRITER = 4, 40


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


def _write(url: str, writer: int) -> None:
    store = AuditStore(url)
    for i in range(PER_WRITER):
        store.record("classification", f"CASE-{writer}", f"session-{writer}", {"predicted_class": "glioma", "i": i},
                     scan_hash=sha256_bytes(f"{writer}-{i}".encode()))
    store.dispose()


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
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write, args=(store_url, w)) for w in range(WRITERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0] * WRITERS
    store = AuditStore(store_url)
    assert store.count() == WRITERS * PER_WRITER
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
