"""Case identifiers: the only thing a case knows about its patient is an id the user types or generates.

An id is limited to letters, digits and `._-` (at most 64), so a name typed by mistake with spaces, or a
date of birth with slashes, is refused rather than stored.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

from core.errors import CaseError

CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_case_id() -> str:
    """A fresh case id: CASE-<UTC date>-<6 random hex digits>."""
    return f"CASE-{datetime.now(timezone.utc):%Y%m%d}-{secrets.token_hex(3).upper()}"


def validate_case_id(value: str) -> str:
    """The id stripped of surrounding blanks, or CaseError saying what is allowed."""
    value = (value or "").strip()
    if not CASE_ID_PATTERN.match(value):
        raise CaseError(f"case id {value!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-' "
                        "(no names, dates of birth or other patient details)")
    return value


def sha256_bytes(data: bytes) -> str:
    """Full SHA-256 of a file's bytes: how scans are identified in the audit trail (never by file name)."""
    return hashlib.sha256(data).hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's content, cached by path, size and modification time (model files are large)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]
