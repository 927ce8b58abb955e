"""Training collections beside the Kaggle layout: a tumour/no-tumour collection (Br35H) and a normal pool (BRISC).

Br35H's tumour half is the Kaggle `notumor` style *with* tumours, so training on it breaks the "collection style
means no tumour" cue. Its tumours have no type: they carry the partial label PARTIAL_TUMOUR ("one of the tumour
classes"), trained with the set-valued loss of `core.training.partial`. Only rows whose `use` column starts with
"train" are read; the collection is split by its `dup_group` column, never inside a group. The BRISC pool gives
normals of planes and styles the Kaggle data lacks, with the no-tumour label; it is used for training only.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.discovery import Sample
from core.errors import DataLayoutError

PARTIAL_TUMOUR = -1  # label of a tumour slice of unknown type
INDEX_FILE = "index.csv"


def _rows(root: Path) -> list[dict[str, str]]:
    index = root / INDEX_FILE
    if not index.is_file():
        raise DataLayoutError(f"{root} has no {INDEX_FILE}: expected a collection folder with index.csv "
                              "(columns file, label, use, ...).")
    with open(index, newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass(frozen=True)
class CollectionSplit:
    """The training and validation parts of a tumour collection (validation drawn by group)."""

    train_groups: list[list[Sample]]
    validation: list[Sample]
    groups: int

    @property
    def train(self) -> list[Sample]:
        """The training images, group after group."""
        return [sample for group in self.train_groups for sample in group]


def tumour_collection(root: str | Path, val_fraction: float, seed: int) -> CollectionSplit:
    """The `use=train` tumour rows of a Br35H-style folder as partial-label samples, split by `dup_group`.

    About `val_fraction` of the images (whole groups, drawn in a seeded order) go to validation.
    """
    root = Path(root)
    rows = [r for r in _rows(root) if r.get("use", "").startswith("train") and r.get("label") == "tumour"]
    if not rows:
        raise DataLayoutError(f"{root / INDEX_FILE} has no tumour rows marked use=train.")
    if "dup_group" not in rows[0]:
        raise DataLayoutError(f"{root / INDEX_FILE} has no dup_group column: it cannot be split without leakage.")
    groups: dict[str, list[Sample]] = {}
    for r in rows:
        groups.setdefault(r["dup_group"], []).append(Sample(root / r["file"], PARTIAL_TUMOUR))
    keys = sorted(groups, key=lambda k: (len(k), k))
    order = np.random.default_rng(seed).permutation(len(keys))
    target = round(val_fraction * len(rows))
    val: list[Sample] = []
    train_groups = []
    for i in order:
        if len(val) < target:
            val.extend(groups[keys[i]])
        else:
            train_groups.append(groups[keys[i]])
    return CollectionSplit(train_groups=train_groups, validation=val, groups=len(keys))


def balanced_by_group(groups: list[list[Sample]], total: int) -> list[Sample]:
    """`total` draws shared as equally as possible among `groups` (near-duplicate groups: a patient or a copied
    series), each group's share cycling through its images, so a group of 28 slices weighs what a single slice
    does. Deterministic: the groups' order decides who gets the remainder."""
    if not groups:
        return []
    share, extra = divmod(total, len(groups))
    out: list[Sample] = []
    for g, members in enumerate(groups):
        quota = share + (1 if g < extra else 0)
        out.extend(members[k % len(members)] for k in range(quota))
    return out


def normal_pool(root: str | Path, no_tumour_label: int) -> list[Sample]:
    """Every `use=train` row of a normal pool (BRISC) as a no-tumour sample (training only)."""
    root = Path(root)
    rows = [r for r in _rows(root) if r.get("use", "").startswith("train")]
    if not rows:
        raise DataLayoutError(f"{root / INDEX_FILE} has no rows marked use=train.")
    return [Sample(root / r["file"], no_tumour_label) for r in rows]
