"""Data: discover the Kaggle layout, split it, and load scans through the one preprocessing path."""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DataLayoutError, ImageDecodeError
from core.io.images import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, load_for_model

SPLITS = ("Training", "Testing")
EXPECTED_LAYOUT = (
    "DIR/Training/<class>/*.jpg and DIR/Testing/<class>/*.jpg, with the same class folders in both "
    "(e.g. glioma, meningioma, notumor, pituitary)"
)


@dataclass
class Sample:
    """One labelled scan on disk."""

    path: Path
    label: int

    @property
    def relpath(self) -> str:
        return "/".join(self.path.parts[-3:])


@dataclass
class DatasetIndex:
    """The files of a dataset root, per split, with the class order (sorted folder names)."""

    root: Path
    class_names: list[str]
    splits: dict[str, list[Sample]] = field(default_factory=dict)

    def counts(self, split: str) -> dict[str, int]:
        labels = [s.label for s in self.splits[split]]
        return {name: labels.count(i) for i, name in enumerate(self.class_names)}


def _is_scan(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS | DICOM_EXTENSIONS


def discover(root: str | Path, splits: Iterable[str] = SPLITS) -> DatasetIndex:
    """Index DIR/<split>/<class>/<file>; raise DataLayoutError naming the expected layout if wrong."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataLayoutError(f"Data folder {root} does not exist. Expected layout: {EXPECTED_LAYOUT}.")
    class_sets = {}
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataLayoutError(f"{root} has no '{split}' folder. Expected layout: {EXPECTED_LAYOUT}.")
        classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(classes) < 2:
            raise DataLayoutError(
                f"{split_dir} must hold one folder per class (found {classes or 'none'}). "
                f"Expected layout: {EXPECTED_LAYOUT}.")
        class_sets[split] = classes
    reference = next(iter(class_sets.values()))
    for classes in class_sets.values():
        if classes != reference:
            raise DataLayoutError(f"Class folders differ between splits: {class_sets}. Expected layout: {EXPECTED_LAYOUT}.")
    index = DatasetIndex(root=root, class_names=reference)
    for split in class_sets:
        samples = []
        for label, name in enumerate(reference):
            files = sorted(p for p in (root / split / name).iterdir() if _is_scan(p))
            if not files:
                raise DataLayoutError(f"{root / split / name} holds no images (JPEG, PNG, BMP, TIFF or DICOM). "
                                      f"Expected layout: {EXPECTED_LAYOUT}.")
            samples.extend(Sample(p, label) for p in files)
        index.splits[split] = samples
    return index


def discover_for_model(root: str | Path, class_names: list[str], splits: Iterable[str] = SPLITS) -> DatasetIndex:
    """`discover`, checked to have the model's classes in the model's order (DataLayoutError otherwise)."""
    index = discover(root, splits)
    if index.class_names != list(class_names):
        raise DataLayoutError(f"The data's classes {index.class_names} differ from the model's {list(class_names)}.")
    return index


def file_hash(path: Path) -> str:
    """MD5 of the file bytes: the identity used for exact-duplicate grouping (read in 1 MB chunks, so a huge
    file in a data folder costs time, not memory)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stratified_group_split(samples: list[Sample], fraction: float, seed: int,
                            group_of: Callable[[Sample], Any]) -> tuple[list[Sample], list[Sample]]:
    """Split so that `fraction` of each class goes to the second part and every group stays on one side.

    A group is labelled by its most common class (groups with copies under two labels are rare: the label
    conflicts of the masks' index); groups are drawn in a seeded order within each class.
    """
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[Sample]] = {}
    for s in samples:
        groups.setdefault(group_of(s), []).append(s)
    labelled = sorted(((Counter(s.label for s in g).most_common(1)[0][0], key), g) for key, g in groups.items())
    first, second = [], []
    for label in sorted({lab for (lab, _), _ in labelled}):
        class_groups = [g for (lab, _), g in labelled if lab == label]
        order = rng.permutation(len(class_groups))
        target = round(fraction * sum(len(g) for g in class_groups))
        taken = 0
        for i in order:
            group = class_groups[i]
            if taken < target:
                second.extend(group)
                taken += len(group)
            else:
                first.extend(group)
    return first, second


PROTOCOLS = ("grouped", "default", "spec")


def make_splits(index: DatasetIndex, protocol: str = "grouped", val_fraction: float = 0.1,
                seed: int = 42, groups: dict[str, int] | None = None) -> dict[str, list[Sample]]:
    """Train/validation/test lists.

    grouped: validation = stratified `val_fraction` of Training drawn by source group (`groups`: relpath ->
             group id from `core.data.leakage.check_leakage`), so no source slice, mirrored or re-encoded copy is on
             both sides; test = all of Testing. The default.
    default: the older protocol: as `grouped`, but only byte-identical files are kept together.
    spec:    the specification's protocol: train = Training, Testing split 50/50 (stratified,
             seeded) into validation and test.
    """
    if protocol == "grouped":
        if groups is None:
            raise ValueError("the grouped protocol needs the source groups (core.data.leakage.check_leakage(index).groups)")
        train, val = _stratified_group_split(index.splits["Training"], val_fraction, seed,
                                             lambda s: groups[s.relpath])
        return {"train": train, "validation": val, "test": list(index.splits["Testing"])}
    if protocol == "default":
        train, val = _stratified_group_split(index.splits["Training"], val_fraction, seed, lambda s: file_hash(s.path))
        return {"train": train, "validation": val, "test": list(index.splits["Testing"])}
    if protocol == "spec":
        test, val = _stratified_group_split(index.splits["Testing"], 0.5, seed, lambda s: file_hash(s.path))
        return {"train": list(index.splits["Training"]), "validation": val, "test": test}
    raise DataLayoutError(f"Unknown split protocol '{protocol}' (choose one of {', '.join(PROTOCOLS)}).")


def limit_per_class(samples: list[Sample], per_class: int) -> list[Sample]:
    """The first `per_class` samples of each class (all when 0): quick runs and tests."""
    if not per_class:
        return samples
    counts: dict[int, int] = {}
    kept = []
    for s in samples:
        if counts.get(s.label, 0) < per_class:
            kept.append(s)
            counts[s.label] = counts.get(s.label, 0) + 1
    return kept


@dataclass
class LoadedImages:
    """Preprocessed scans as uint8 (exact: preprocess() yields whole numbers), their labels and skips."""

    images: np.ndarray
    labels: np.ndarray
    samples: list[Sample]
    skipped: list[str]


def load_samples(samples: list[Sample], image_size: int,
                 progress: Callable[[int, int], None] | None = None, crop: str = "none") -> LoadedImages:
    """Decode and preprocess every sample; unreadable files are skipped, counted and reported."""
    images, labels, kept, skipped = [], [], [], []
    for i, sample in enumerate(samples):
        try:
            images.append(load_for_model(sample.path, image_size, crop=crop).astype(np.uint8))
            labels.append(sample.label)
            kept.append(sample)
        except ImageDecodeError as exc:
            skipped.append(str(exc))
        if progress:
            progress(i + 1, len(samples))
    array = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return LoadedImages(array, np.asarray(labels, np.int64), kept, skipped)


def fingerprint(samples: list[Sample]) -> str:
    """A short hash of the names, contents and labels of a sample list (records which data a model saw)."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.relpath):
        h.update(f"{s.relpath}:{file_hash(s.path)}:{s.label}\n".encode())
    return h.hexdigest()[:16]
