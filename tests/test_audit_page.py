"""The audit page says how far the hash chain verifies, and shows a red banner at the first broken link."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store.audit import AuditStore

PAGE = Path(__file__).resolve().parent.parent / "pages" / "audit_trail.py"


def test_the_audit_page_shows_the_chain_and_a_red_banner_when_broken(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSCAN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("BRAINSCAN_DB_URL", raising=False)
    (tmp_path / "state").mkdir()
    store = AuditStore(f"sqlite:///{tmp_path / 'state' / 'audit.sqlite3'}")
    for i in range(3):
        store.record("classification", "CASE-P", "s", {"predicted_class": "glioma", "i": i})
    store.dispose()
    page = AppTest.from_file(str(PAGE), default_timeout=120).run()
    assert not page.exception
    assert [s.value.split(" (")[0] for s in page.success] == ["Chain verified up to record 4"]
    assert not page.error

    with sqlite3.connect(tmp_path / "state" / "audit.sqlite3") as conn:  # someone edits around the trigger
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET result = '{\"predicted_class\": \"notumor\", \"i\": 1}' WHERE id = 3")
    page = AppTest.from_file(str(PAGE), default_timeout=120).run()
    assert not page.success
    assert [e.value.split(":")[0] for e in page.error] == ["**Audit chain broken at record 3**"]
    assert "edited" in page.error[0].value and "Verified up to record 2" in page.error[0].value
