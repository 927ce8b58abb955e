"""Leakage check: group every scan with its copies, so no source slice is on both sides of a split.

Two scans are copies of one source slice when any of these holds:
- **exact**: the files are byte-identical (MD5);
- **source id**: the masks' `index.csv` names the same source image (figshare/BRISC id, mirrored or not);
- **near**: the correlation of their standardised 64x64 grayscale thumbnails is >= `threshold`, taking the
  best of six comparisons: Pearson on the whole scans, Pearson after cropping each to its content (re-framed
  or padded copies), Spearman on the whole scans (re-encoded copies with re-mapped intensities), each as they
  are and with one of the two mirrored left-right.
Scans linked by any of these (transitively) form one *group*. A test scan is **unseen** when its group holds
no training scan: the strict subset every evaluation reports beside the full test split. The older
threshold-only subset (`leakage_free`: no exact or unmirrored near copy) is kept for continuity; it still
contains most mirrored copies. Why the near threshold is 0.95, and what the check finds on the shared copy:
docs/data.md.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import rankdata

from core.data.discovery import DatasetIndex, Sample, file_hash
from core.errors import DataLayoutError, ImageDecodeError
from core.io.images import head_box, read_image

THUMB_SIZE = 64
NEAR_THRESHOLD = 0.95
LEAKAGE_FREE_FILE = "leakage_free_test.txt"
UNSEEN_FILE = "unseen_test.txt"
MASKS_INDEX = "index.csv"
BLOCK = 1024


def _unit(gray: np.ndarray) -> np.ndarray:
    small = cv2.resize(gray, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = small.ravel() - small.mean()
    norm = np.linalg.norm(small)
    return small / norm if norm > 0 else small


def _rank_unit(gray: np.ndarray) -> np.ndarray:
    small = cv2.resize(gray, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    ranks = rankdata(small.ravel()).astype(np.float32)
    ranks -= ranks.mean()
    norm = np.linalg.norm(ranks)
    return ranks / norm if norm > 0 else ranks


def thumbnails(path: Path) -> np.ndarray:
    """(3, 4096) unit vectors: the whole scan, the scan cropped to its content, and the whole scan's pixel ranks
    (Spearman: robust to re-encoding that darkens or re-maps intensities); zeros if unreadable or flat."""
    try:
        gray = cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY)
    except ImageDecodeError:
        return np.zeros((3, THUMB_SIZE * THUMB_SIZE), np.float32)
    top, bottom, left, right = head_box(gray)
    return np.stack([_unit(gray), _unit(gray[top:bottom, left:right]), _rank_unit(gray)])


def mirrored(thumbs: np.ndarray) -> np.ndarray:
    """The same thumbnails of the left-right mirrored scans (flipping commutes with resizing and cropping)."""
    shape = thumbs.shape[:-1] + (THUMB_SIZE, THUMB_SIZE)
    return np.ascontiguousarray(thumbs.reshape(shape)[..., ::-1].reshape(thumbs.shape))


def read_source_ids(masks_index: str | Path | None) -> dict[str, str]:
    """relpath (e.g. 'Testing/glioma/Te-gl_0001.jpg') -> source image id, from the masks' index.csv."""
    if masks_index is None:
        return {}
    path = Path(masks_index)
    path = path / MASKS_INDEX if path.is_dir() else path
    if not path.is_file():
        raise DataLayoutError(f"{path} does not exist: pass the masks folder or its {MASKS_INDEX}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"file", "source_image"} <= set(rows[0]):
        raise DataLayoutError(f"{path} has no 'file' and 'source_image' columns")
    return {r["file"]: r["source_image"] for r in rows if r.get("source_image")}


def default_masks_index(data_root: str | Path) -> Path | None:
    """The masks' index beside the dataset (`<root>-masks/index.csv`, as in ../shared/data), if present."""
    root = Path(data_root).expanduser().resolve()
    candidate = root.parent / f"{root.name}-masks" / MASKS_INDEX
    return candidate if candidate.is_file() else None


@dataclass
class LeakageReport:
    """Which test scans have a copy in Training, and the source groups of every scan."""

    class_names: list[str]
    test: list[Sample]
    exact: dict[str, str]
    near: dict[str, tuple[str, float]]
    threshold: float
    groups: dict[str, int] = field(default_factory=dict)
    unseen: set[str] = field(default_factory=set)
    links: dict[str, int] = field(default_factory=dict)

    @property
    def leaky(self) -> set[str]:
        """Test scans with an exact or (unmirrored, uncropped) near copy: the older, weaker criterion."""
        return set(self.exact) | set(self.near)

    def leakage_free(self) -> list[Sample]:
        leaky = self.leaky
        return [s for s in self.test if s.relpath not in leaky]

    def unseen_test(self) -> list[Sample]:
        """Test scans whose source group has no training scan: the strict subset."""
        return [s for s in self.test if s.relpath in self.unseen]

    def summary(self) -> dict:
        rows = {}
        for i, name in enumerate(self.class_names):
            files = [s.relpath for s in self.test if s.label == i]
            rows[name] = {
                "test": len(files),
                "exact": sum(f in self.exact for f in files),
                "near_only": sum(f in self.near and f not in self.exact for f in files),
                "leakage_free": sum(f not in self.leaky for f in files),
                "unseen": sum(f in self.unseen for f in files),
            }
        total = {k: sum(r[k] for r in rows.values()) for k in ("test", "exact", "near_only", "leakage_free", "unseen")}
        return {"per_class": rows, "total": total, "near_threshold": self.threshold, "thumbnail": THUMB_SIZE,
                "n_groups": len(set(self.groups.values())), "links": self.links}


def _near_pairs(thumbs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, r) with i < j for every pair whose best thumbnail correlation (as is, mirrored, cropped) >= threshold."""
    flipped = mirrored(thumbs)
    rows, cols, values = [], [], []
    n = len(thumbs)
    for start in range(0, n, BLOCK):
        block = slice(start, start + BLOCK)
        best = np.full((min(BLOCK, n - start), n), -1.0, np.float32)
        for variant in range(thumbs.shape[1]):
            for other in (thumbs, flipped):
                np.maximum(best, thumbs[block, variant] @ other[:, variant].T, out=best)
        i, j = np.nonzero(best >= threshold)
        keep = start + i < j
        rows.append(start + i[keep])
        cols.append(j[keep])
        values.append(best[i[keep], j[keep]])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values)


def check_leakage(index: DatasetIndex, threshold: float = NEAR_THRESHOLD, masks_index: str | Path | None = "auto",
          progress: Callable[[int, int], None] | None = None) -> LeakageReport:
    """Group every scan of Training and Testing with its copies; find the test scans with a training copy.

    `masks_index`: the masks' index.csv (or its folder) for source ids; "auto" looks beside the data, None skips.
    """
    if masks_index == "auto":
        masks_index = default_masks_index(index.root)
    sources = read_source_ids(masks_index)
    train, test = index.splits["Training"], index.splits["Testing"]
    everything = train + test
    hashes, thumbs = [], []
    for i, sample in enumerate(everything):
        hashes.append(file_hash(sample.path))
        thumbs.append(thumbnails(sample.path))
        if progress:
            progress(i + 1, len(everything))
    thumbs_array = np.stack(thumbs) if thumbs else np.zeros((0, 3, THUMB_SIZE * THUMB_SIZE), np.float32)
    n_train = len(train)

    train_hash: dict[str, str] = {}
    for sample, h in zip(train, hashes[:n_train]):
        train_hash.setdefault(h, sample.relpath)
    exact = {s.relpath: train_hash[h] for s, h in zip(test, hashes[n_train:]) if h in train_hash}
    plain = thumbs_array[:, 0]
    near = {}
    if len(test) and n_train:
        corr = plain[n_train:] @ plain[:n_train].T
        best = corr.argmax(axis=1)
        for k, j in enumerate(best):
            if corr[k, j] >= threshold:
                near[test[k].relpath] = (train[j].relpath, round(float(corr[k, j]), 4))

    edges_i, edges_j = [], []
    by_key: dict[tuple[str, str], int] = {}
    counts = {"exact": 0, "source_id": 0, "near": 0}
    for i, (sample, h) in enumerate(zip(everything, hashes)):
        for kind, key in (("exact", h), ("source_id", sources.get(sample.relpath))):
            if key is None:
                continue
            first = by_key.setdefault((kind, key), i)
            if first != i:
                edges_i.append(first)
                edges_j.append(i)
                counts[kind] += 1
    pi, pj, _ = _near_pairs(thumbs_array, threshold) if len(everything) > 1 else (np.array([], int),) * 3
    counts["near"] = int(len(pi))
    rows = np.concatenate([np.asarray(edges_i, int), pi.astype(int)])
    cols = np.concatenate([np.asarray(edges_j, int), pj.astype(int)])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(everything), len(everything)))
    _, labels = connected_components(graph, directed=False)
    groups = {s.relpath: int(g) for s, g in zip(everything, labels)}
    train_groups = set(labels[:n_train].tolist())
    unseen = {s.relpath for s, g in zip(test, labels[n_train:]) if g not in train_groups}
    return LeakageReport(index.class_names, test, exact, near, threshold, groups, unseen, counts)


def write_leakage_report(report: LeakageReport, out_dir: Path) -> Path:
    """Write the unseen and leakage-free lists (one relative path per line) and the report as JSON; returns the
    leakage-free list's path (the unseen list is beside it, UNSEEN_FILE)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / UNSEEN_FILE).write_text("".join(s.relpath + "\n" for s in report.unseen_test()))
    free = out_dir / LEAKAGE_FREE_FILE
    free.write_text("".join(s.relpath + "\n" for s in report.leakage_free()))
    (out_dir / "leakage_audit.json").write_text(json.dumps(
        {**report.summary(), "exact_pairs": report.exact,
         "near_pairs": {k: list(v) for k, v in report.near.items()}, "groups": report.groups}, indent=1) + "\n")
    return free
