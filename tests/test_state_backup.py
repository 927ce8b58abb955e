"""`state backup` / `state restore`: a verified copy of the audit store (cases, feedback), taken while the app writes."""
from __future__ import annotations

import argparse
import json
import threading

import pytest

from core.cli.state import cmd_backup, cmd_restore
from core.errors import AuditError
from core.store.audit import AuditStore
from core.store.backup import BACKUP_FILE, MANIFEST_FILE, BackupManifest, backup, restore
from core.store.feedback import record_feedback


def _url(path) -> str:
    return f"sqlite:///{path}"


def _state(url: str) -> list[tuple]:
    store = AuditStore(url)
    rows = [(r.id, r.event, r.case_id, r.scan_hash, r.result) for r in store.records()]
    store.dispose()
    return rows


def test_backup_restore_round_trip_is_verified(tmp_path):
    source = _url(tmp_path / "live" / "audit.sqlite3")
    (tmp_path / "live").mkdir()
    store = AuditStore(source)
    store.record("classification", "CASE-1", "s", {"predicted_class": "glioma"}, scan_hash="a" * 64)
    record_feedback(store, "CASE-1", "s", "a" * 64, "m" * 64, "glioma", agree=False, correct_class="meningioma")
    store.record("report", "CASE-1", "s", {"scans": 1})
    store.dispose()
    assert cmd_backup(argparse.Namespace(dir=str(tmp_path / "b1"), db=source)) == 0
    manifest = BackupManifest.from_json((tmp_path / "b1" / MANIFEST_FILE).read_text())
    assert manifest.records == 3 and manifest.verified_up_to == 4 and len(manifest.head_hash) == 64
    with pytest.raises(AuditError, match="already holds a backup"):
        backup(source, tmp_path / "b1")

    fresh = _url(tmp_path / "restored" / "audit.sqlite3")
    assert cmd_restore(argparse.Namespace(dir=str(tmp_path / "b1"), db=fresh, force=False)) == 0
    assert _state(fresh) == _state(source)
    assert AuditStore(fresh).verify(expect=manifest.head_hash).ok

    AuditStore(source).record("report", "CASE-2", "s", {"scans": 2})  # the live store moves on, then is lost
    with pytest.raises(AuditError, match="holds 4 records: restore with --force"):
        restore(tmp_path / "b1", source)
    restore(tmp_path / "b1", source, force=True)
    assert len(_state(source)) == 3
    kept = list((tmp_path / "live").glob("audit.sqlite3.replaced-*"))
    assert len(kept) == 1 and len(_state(_url(kept[0]))) == 4


def test_a_changed_backup_is_refused(tmp_path):
    source = _url(tmp_path / "audit.sqlite3")
    AuditStore(source).record("report", "CASE-1", "s", {"scans": 1})
    backup(source, tmp_path / "b")
    manifest_path = tmp_path / "b" / MANIFEST_FILE
    data = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**data, "head_hash": "f" * 64}))
    with pytest.raises(AuditError, match="not in the chain"):
        restore(tmp_path / "b", _url(tmp_path / "new.sqlite3"))
    with (tmp_path / "b" / BACKUP_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(AuditError, match="does not match its manifest"):
        restore(tmp_path / "b", _url(tmp_path / "new.sqlite3"))
    assert not (tmp_path / "new.sqlite3").exists()
    with pytest.raises(AuditError, match="pg_dump"):
        backup("postgresql+psycopg://u@127.0.0.1/db", tmp_path / "pg")


def test_a_backup_taken_while_the_app_writes_is_a_consistent_prefix(tmp_path):
    source = _url(tmp_path / "audit.sqlite3")
    AuditStore(source).dispose()
    started, stop, written = threading.Event(), threading.Event(), []

    def writer() -> None:
        store = AuditStore(source)
        while not stop.is_set():
            written.append(store.record("classification", f"CASE-{len(written)}", "w", {"i": len(written)}))
            if len(written) == 20:
                started.set()
        store.dispose()

    thread = threading.Thread(target=writer)
    thread.start()
    assert started.wait(120)
    manifest = backup(source, tmp_path / "b")
    while len(written) < manifest.records + 10:  # the writer goes on after the snapshot
        stop.wait(0.01)
    stop.set()
    thread.join(60)
    assert 20 <= manifest.records < len(written)
    restore(tmp_path / "b", _url(tmp_path / "restored.sqlite3"))
    restored, live = _state(_url(tmp_path / "restored.sqlite3")), _state(source)
    assert restored == live[-len(restored):]  # newest first: the restored store is exactly the live store's start
    assert [r[4]["i"] for r in reversed(restored)] == list(range(manifest.records))
