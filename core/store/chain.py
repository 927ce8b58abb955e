"""The audit trail's hash chain: every record carries the SHA-256 of its content and of the record before it.

A record's content hash is the SHA-256 of its canonical JSON (sorted keys, no spaces, UTC time to the
microsecond, the result as the JSON text stored). Its chain hash is the SHA-256 of the previous record's chain
hash, its own content hash and its position, so editing, deleting, inserting or reordering any record breaks the
link at that record. The chain starts at a genesis record (position 0) that holds the count and a digest of the
records written before the store had a chain, so a migrated store's older records are covered too.

What a chain cannot do on its own: someone who can rewrite the whole database can recompute every hash. Keep the
head hash somewhere else (`audit verify` prints it, every backup's manifest records it) and check it is still
in the chain (`audit verify --expect HASH`).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from core.store.versioned import VersionedJson

GENESIS_EVENT = "genesis"
ZERO = "0" * 64
HASHED = ("recorded_at", "event", "case_id", "scan_hash", "model_hash", "result", "app_version", "session_id")


def utc_text(value: datetime) -> str:
    """A time as ISO 8601 UTC with microseconds (SQLite returns naive times: they were written in UTC)."""
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def content_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON (the columns in HASHED, the result as stored)."""
    content = {key: row[key] for key in HASHED}
    content["recorded_at"] = utc_text(row["recorded_at"])
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, content: str, seq: int) -> str:
    """SHA-256 that links a record (its content hash and position) to the previous record's chain hash."""
    return hashlib.sha256(f"{prev_hash}:{content}:{seq}".encode()).hexdigest()


def legacy_digest(rows: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """(count, SHA-256 over the content hashes in id order) of the records written before the chain."""
    digest, count = hashlib.sha256(), 0
    for row in rows:
        digest.update(content_hash(row).encode())
        count += 1
    return count, digest.hexdigest()


@dataclass(frozen=True)
class ChainReport(VersionedJson):
    """What `audit verify` found: where the chain holds up to, and the first broken link if any."""

    ok: bool
    records: int
    verified_up_to: int | None
    head_hash: str | None
    genesis_id: int | None
    legacy_records: int
    broken_id: int | None = None
    problem: str | None = None
    schema_version: int = VersionedJson.SCHEMA_VERSION

    def summary(self) -> str:
        """One line for people: verified up to record N, or the first broken link."""
        if self.ok:
            return (f"chain verified up to record {self.verified_up_to} ({self.records} records, "
                    f"{self.legacy_records} before the genesis record {self.genesis_id}); head {self.head_hash}")
        upto = f"verified up to record {self.verified_up_to}" if self.verified_up_to else "nothing verified"
        return f"chain BROKEN at record {self.broken_id}: {self.problem} ({upto})"


class _Walk:
    """The state of one pass over the records in id order."""

    def __init__(self) -> None:
        self.legacy: list[Mapping[str, Any]] = []
        self.last: Mapping[str, Any] | None = None
        self.genesis_id: int | None = None
        self.count = 0

    def check(self, row: Mapping[str, Any]) -> str | None:
        """The problem with this record, or None (and the record becomes the last verified one)."""
        self.count += 1
        if row["chain_seq"] is None:
            if self.last is not None:
                return "it has no chain hash (written around the store, or its hash was removed)"
            self.legacy.append(row)
            return None
        if row["content_hash"] != content_hash(row):
            return "it was edited: its content no longer matches its hash"
        problem = self._genesis(row) if self.last is None else self._link(row)
        if problem is None and row["chain_hash"] != chain_hash(row["prev_hash"], row["content_hash"], row["chain_seq"]):
            problem = "its chain hash does not match its content, position and predecessor"
        if problem is None:
            self.last = row
        return problem

    def _genesis(self, row: Mapping[str, Any]) -> str | None:
        if row["chain_seq"] != 0 or row["event"] != GENESIS_EVENT or row["prev_hash"] != ZERO:
            return "the chain does not start at a genesis record (records were deleted or reordered)"
        expected = json.loads(row["result"])
        count, digest = legacy_digest(self.legacy)
        if (count, digest) != (expected.get("legacy_records"), expected.get("legacy_digest")):
            return (f"the records before the genesis were changed ({count} found, "
                    f"{expected.get('legacy_records')} recorded, or their content differs)")
        self.genesis_id = row["id"]
        return None

    def _link(self, row: Mapping[str, Any]) -> str | None:
        last = self.last
        assert last is not None
        if row["chain_seq"] != last["chain_seq"] + 1 or row["prev_hash"] != last["chain_hash"]:
            return (f"it does not follow record {last['id']} (position {row['chain_seq']} after "
                    f"{last['chain_seq']}): a record was deleted, inserted or reordered")
        return None


def verify_rows(rows: Iterable[Mapping[str, Any]], expect: str | None = None) -> ChainReport:
    """Walk the records in id order and report the first broken link; `expect`: a head hash kept elsewhere."""
    walk = _Walk()
    for row in rows:
        problem = walk.check(row)
        if problem:
            return _report(walk, False, row["id"], problem)
        if expect and walk.last is not None and walk.last["chain_hash"] == expect:
            expect = None
    if walk.last is None:
        return _report(walk, False, None, "no genesis record: the store has no chain (open it once with the app "
                                          "or `python -m core audit verify` to migrate it)")
    if expect:
        return _report(walk, False, None, f"the anchored head {expect[:16]}... is not in the chain (history rewritten)")
    return _report(walk, True, None, None)


def _report(walk: _Walk, ok: bool, broken_id: int | None, problem: str | None) -> ChainReport:
    last = walk.last
    return ChainReport(ok=ok, records=walk.count, verified_up_to=last["id"] if last else None,
                       head_hash=last["chain_hash"] if last else None, genesis_id=walk.genesis_id,
                       legacy_records=len(walk.legacy), broken_id=broken_id, problem=problem)
