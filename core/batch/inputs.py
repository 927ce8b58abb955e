"""Work items of a batch: one per image file, zip member or DICOM series, each with its content hash.

INPUT may be a folder (walked recursively; hidden files skipped), a file (image, DICOM or zip) or a list file
(`.txt`/`.lst`: one path per line, `#` comments; relative paths resolve against the list's folder). Zips are
expanded with the app's limits (`core.io.series.expand_archives`). DICOM files of one folder (or one zip) are
grouped by SeriesInstanceUID, and each group follows the app's one series rule (`series_files`): several files
or a multi-frame file are a series (one item), a lone single-frame file is a scan of its own.
"""
from __future__ import annotations

import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from core.errors import BatchError, CaseError
from core.io.images import DICOM_EXTENSIONS, IMAGE_EXTENSIONS
from core.io.series import expand_archives, is_dicom, is_zip, series_files

LIST_SUFFIXES = {".txt", ".lst"}
ZIP_SUFFIXES = {".zip"}


@dataclass(frozen=True)
class WorkItem:
    """What one worker call scores: an image (one blob) or a series (its files), named by `key`."""

    key: str
    kind: str  # "image" | "series" | "error" (an input that could not even be listed, e.g. a zip bomb)
    names: tuple[str, ...]
    blobs: tuple[bytes, ...]
    sha256: str
    error: str | None = None


@dataclass(frozen=True)
class Inputs:
    """The items found, in a stable order, and the files passed over (not a scan by name or content)."""

    items: list[WorkItem]
    skipped: list[str]


def _sha(blobs: tuple[bytes, ...]) -> str:
    """Content hash of an item: of the bytes for one file, of the sorted file hashes for a series."""
    if len(blobs) == 1:
        return hashlib.sha256(blobs[0]).hexdigest()
    parts = sorted(hashlib.sha256(b).hexdigest() for b in blobs)
    return hashlib.sha256(("series:" + ",".join(parts)).encode()).hexdigest()


def _series_uid(data: bytes) -> str:
    import pydicom

    try:
        return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True).get("SeriesInstanceUID", ""))
    except Exception:  # an unreadable header: the file is classified (and reported) on its own
        return f"unreadable:{hashlib.sha256(data).hexdigest()}"


def group_files(where: str, files: dict[str, bytes]) -> list[WorkItem]:
    """Items of one folder's (or one zip's) files: DICOM series by the one rule, everything else one by one."""
    by_uid: dict[str, dict[str, bytes]] = defaultdict(dict)
    for name, data in files.items():
        if is_dicom(data):
            by_uid[_series_uid(data)][name] = data
    in_series: set[str] = set()
    groups = []
    for uid in sorted(by_uid, key=lambda u: min(by_uid[u])):
        members = series_files(by_uid[uid])
        if members:
            in_series.update(members)
            groups.append(dict(sorted(members.items())))
    items = []
    for number, members in enumerate(groups, start=1):
        key = f"{where}/series" if len(groups) == 1 else f"{where}/series-{number}"
        blobs = tuple(members.values())
        items.append(WorkItem(key, "series", tuple(members), blobs, _sha(blobs)))
    for name, data in files.items():
        if name not in in_series:
            items.append(WorkItem(name, "image", (name,), (data,), _sha((data,))))
    return items


def _is_candidate(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in IMAGE_EXTENSIONS | DICOM_EXTENSIONS | ZIP_SUFFIXES or suffix == ""


def _zip_items(name: str, data: bytes) -> list[WorkItem]:
    try:
        members = expand_archives({name: data})
    except CaseError as exc:
        return [WorkItem(name, "error", (name,), (), hashlib.sha256(data).hexdigest(), str(exc))]
    return group_files(name, members)


def _folder_items(root: Path, skipped: list[str]) -> list[WorkItem]:
    by_folder: dict[Path, dict[str, bytes]] = defaultdict(dict)
    items: list[WorkItem] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        if not _is_candidate(path):
            skipped.append(str(path))
            continue
        data = path.read_bytes()
        if is_zip(data):
            items.extend(_zip_items(str(path), data))
        elif path.suffix.lower() == "" and not is_dicom(data):
            skipped.append(str(path))
        else:
            by_folder[path.parent][str(path)] = data
    for folder in sorted(by_folder):
        items.extend(group_files(str(folder), by_folder[folder]))
    return items


def _list_entries(list_file: Path) -> list[Path]:
    entries = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line).expanduser()
            entries.append(path if path.is_absolute() else list_file.parent / path)
    return entries


def collect(inputs: list[str | Path]) -> Inputs:
    """Every item of the inputs (folders, files, zips, list files), sorted by key; duplicate keys once."""
    items: list[WorkItem] = []
    skipped: list[str] = []
    singles: dict[Path, dict[str, bytes]] = defaultdict(dict)
    pending = [Path(p).expanduser() for p in inputs]
    while pending:
        path = pending.pop(0)
        if path.is_dir():
            items.extend(_folder_items(path, skipped))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            pending.extend(_list_entries(path))
        elif path.is_file():
            data = path.read_bytes()
            if is_zip(data):
                items.extend(_zip_items(str(path), data))
            else:
                singles[path.parent][str(path)] = data
        else:
            raise BatchError(f"{path}: no such file or folder")
    for folder in sorted(singles):
        items.extend(group_files(str(folder), singles[folder]))
    unique = {item.key: item for item in items}
    return Inputs(sorted(unique.values(), key=lambda i: i.key), skipped)
