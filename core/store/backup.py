"""Backup and restore of the app's state: the audit store, which holds every case's records and all feedback.

Cases are ids inside audit records (`core.store.cases` keeps no other file) and feedback is an audit record
(`core.store.feedback`), so one database is the whole state. A SQLite store is copied with SQLite's online
backup API: one consistent snapshot while the app keeps writing (WAL), verified by its hash chain before the
manifest is written. A PostgreSQL store is backed up with `pg_dump` (docs/reliability.md).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import AuditError
from core.store.audit import AuditStore, app_version
from core.store.versioned import VersionedJson

BACKUP_FILE = "audit.sqlite3"
MANIFEST_FILE = "manifest.json"
PG_DUMP_HINT = ("PostgreSQL stores are backed up with pg_dump: `pg_dump --table=audit_events --format=custom "
                "--file=audit.dump URL` and restored with `pg_restore --dbname=URL audit.dump`, then "
                "`python -m core audit verify --db URL --expect HEAD` (docs/reliability.md)")


@dataclass(frozen=True)
class BackupManifest(VersionedJson):
    """What a backup folder holds and how to check it: record count, chain head and the file's SHA-256."""

    created_at: str
    app_version: str
    source: str
    records: int
    verified_up_to: int | None
    head_hash: str | None
    sha256: str
    schema_version: int = VersionedJson.SCHEMA_VERSION


def _sqlite_path(url: str) -> Path:
    """The file of a sqlite:/// URL; AuditError (with the pg_dump route) for any other database."""
    if not url.startswith("sqlite:///"):
        raise AuditError(f"state backup copies SQLite stores only. {PG_DUMP_HINT}")
    return Path(url.removeprefix("sqlite:///"))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup: one consistent snapshot even while other connections write."""
    with closing(sqlite3.connect(source, timeout=60)) as src, closing(sqlite3.connect(target, timeout=60)) as dst:
        src.backup(dst)


def _verified(path: Path, expect: str | None = None) -> AuditStore:
    """Open a copy and check its chain; AuditError naming the first broken link."""
    store = AuditStore(f"sqlite:///{path}")
    report = store.verify(expect)
    if not report.ok:
        store.dispose()
        raise AuditError(f"{path}: {report.summary()}")
    return store


def backup(url: str, folder: str | Path) -> BackupManifest:
    """Copy the store into `folder` (created; must not hold a backup already), verify it, write the manifest."""
    source, folder = _sqlite_path(url), Path(folder)
    if (folder / MANIFEST_FILE).exists() or (folder / BACKUP_FILE).exists():
        raise AuditError(f"{folder} already holds a backup: choose a new folder")
    if not source.is_file():
        raise AuditError(f"no audit store at {source}")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / BACKUP_FILE
    _copy(source, target)
    store = _verified(target)
    report, records = store.verify(), store.count()
    store.dispose()
    manifest = BackupManifest(created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              app_version=app_version(), source=str(source), records=records,
                              verified_up_to=report.verified_up_to, head_hash=report.head_hash,
                              sha256=_file_sha256(target))
    temporary = folder / f".{MANIFEST_FILE}.tmp"
    temporary.write_text(manifest.to_json())
    os.replace(temporary, folder / MANIFEST_FILE)
    return manifest


def restore(folder: str | Path, url: str, force: bool = False) -> BackupManifest:
    """Check the backup (file hash, chain, head), copy it over the store at `url`, and verify the result.

    A store that already holds records is replaced only with `force`; it is kept beside as `*.replaced-<time>`."""
    folder, target = Path(folder), _sqlite_path(url)
    try:
        manifest = BackupManifest.from_json((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError, TypeError) as exc:
        raise AuditError(f"{folder} is not a readable backup ({exc.__class__.__name__}: {exc})") from exc
    copy = folder / BACKUP_FILE
    if not copy.is_file() or _file_sha256(copy) != manifest.sha256:
        raise AuditError(f"{copy} is missing or does not match its manifest's SHA-256")
    _verified(copy, manifest.head_hash).dispose()
    if target.exists():
        current = AuditStore(url)
        held = current.count()
        current.dispose()
        if held and not force:
            raise AuditError(f"{target} holds {held} records: restore with --force to replace it (it is kept)")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        _copy(target, target.with_name(f"{target.name}.replaced-{stamp}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy(copy, target)
    restored = _verified(target, manifest.head_hash)
    count = restored.count()
    restored.dispose()
    if count != manifest.records:
        raise AuditError(f"restored {count} records, the manifest says {manifest.records}")
    return manifest
