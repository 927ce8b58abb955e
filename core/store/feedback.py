"""Clinician feedback on a scan's prediction: agree or disagree, the correct class, a note.

Feedback is an audit record (event "feedback") whose result holds the model's class, the clinician's
class and the note; agreement per class and the disagreements are read back from the audit store.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.store.audit import AuditRecord, AuditStore

MAX_NOTE = 2000


def record_feedback(store: AuditStore, case_id: str, session_id: str, scan_hash: str, model_hash: str | None,
                    predicted: str, agree: bool, correct_class: str | None = None, note: str = "") -> int:
    """Store one clinician's verdict on one scan's prediction (the correct class is the predicted one on agree)."""
    correct = predicted if agree else (correct_class or "")
    result = {"predicted_class": predicted, "agree": bool(agree), "correct_class": correct,
              "note": (note or "").strip()[:MAX_NOTE]}
    return store.record("feedback", case_id, session_id, result, scan_hash=scan_hash, model_hash=model_hash)


def latest_feedback(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """The newest feedback per (case, scan, model): a clinician who changes their mind counts once."""
    seen: dict[tuple[str, str | None, str | None], AuditRecord] = {}
    for rec in sorted((r for r in records if r.event == "feedback"), key=lambda r: r.id):
        seen[(rec.case_id, rec.scan_hash, rec.model_hash)] = rec
    return sorted(seen.values(), key=lambda r: r.id, reverse=True)


def agreement_by_class(records: Iterable[AuditRecord], class_names: list[str]) -> list[dict[str, Any]]:
    """Per predicted class: scans reviewed, agreements and the agreement rate (None when none reviewed)."""
    rows = []
    feedback = latest_feedback(records)
    for name in class_names:
        mine = [r for r in feedback if r.result.get("predicted_class") == name]
        agreed = sum(bool(r.result.get("agree")) for r in mine)
        rows.append({"class": name, "reviewed": len(mine), "agreed": agreed,
                     "agreement": agreed / len(mine) if mine else None})
    return rows


def disagreements(records: Iterable[AuditRecord]) -> list[dict[str, Any]]:
    """The scans where the clinician disagreed: the cases to review and, later, to retrain on."""
    return [{"recorded_at": r.recorded_at.isoformat(timespec="seconds"), "case_id": r.case_id,
             "scan_hash": r.scan_hash, "model_hash": r.model_hash, "predicted_class": r.result.get("predicted_class"),
             "correct_class": r.result.get("correct_class"), "note": r.result.get("note", "")}
            for r in latest_feedback(records) if not r.result.get("agree")]
