"""A writer killed (SIGKILL) in the middle of a report, a feedback write or a case's classification record: on
restart every committed record is there, the half-written one is not, and the chain verifies and continues.

The writer is a separate process that stops itself at a chosen point (its INSERT executed, not yet committed) and
says so on stdout; the test kills it then, so the kill lands at the same place every run (no timing)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.store.audit import AuditStore

REPO = Path(__file__).resolve().parent.parent
COMMITTED = 3

WRITER = """
import sys, time
from sqlalchemy import event
from core.store.audit import AuditStore
from core.store.feedback import record_feedback

url, kind, committed = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = AuditStore(url)

def write(i):
    if kind == "report":
        store.record("report", "CASE-K", "s", {"scans": [{"sha256": "a" * 64, "predicted_class": "glioma"}], "i": i})
    elif kind == "feedback":
        record_feedback(store, "CASE-K", "s", f"{i:064d}", "m" * 64, "glioma", agree=False,
                        correct_class="meningioma", note=f"note {i}")
    else:
        store.record("classification", "CASE-K", "s", {"predicted_class": "glioma", "i": i}, scan_hash=f"{i:064d}")

for i in range(committed):
    write(i)
print("COMMITTED", flush=True)

@event.listens_for(store.engine, "after_cursor_execute")
def stop_mid_transaction(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
        print("INSERTED-NOT-COMMITTED", flush=True)
        time.sleep(600)

write(committed)
print("UNREACHABLE", flush=True)
"""


def _kill_mid_write(url: str, kind: str) -> list[str]:
    """Run the writer, SIGKILL it once its last INSERT has executed but not committed; its stdout lines."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, url, kind, str(COMMITTED)], cwd=REPO,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith("INSERTED-NOT-COMMITTED"):
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        if process.poll() is None:  # the child never reached the point (the assertion below says so)
            process.kill()
        process.wait(60)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    return lines


@pytest.mark.parametrize("kind", ["report", "feedback", "classification"])
def test_a_writer_killed_mid_write_loses_nothing_committed_and_shows_nothing_half_written(tmp_path, kind):
    path = tmp_path / "audit.sqlite3"
    url = f"sqlite:///{path}"
    AuditStore(url).dispose()  # the store exists, as when the app is running
    assert _kill_mid_write(url, kind) == ["COMMITTED", "INSERTED-NOT-COMMITTED"]
    assert Path(f"{path}-wal").exists()  # the killed process left its write-ahead log behind

    store = AuditStore(url)  # the restart
    records = store.records()
    assert len(records) == COMMITTED and {r.event for r in records} == {kind}
    if kind == "feedback":
        assert sorted(r.result["note"] for r in records) == [f"note {i}" for i in range(COMMITTED)]
    else:
        assert sorted(r.result["i"] for r in records) == list(range(COMMITTED))
    assert store.verify().ok
    store.record("report", "CASE-K", "s", {"after": "restart"})  # the chain continues past the lost transaction
    report = store.verify()
    assert report.ok and report.records == COMMITTED + 2, report.summary()
    store.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
