"""Expert tumour masks for dataset scans (`brain-tumor-mri-masks/index.csv`), for scoring explanation maps.

The masks are evaluation aids, not clinical ground truth. Training masks may be used to choose explainer
options; Testing masks only to evaluate. Rows with a non-empty `flag` (annotators disagree, label conflicts)
are kept and marked so that results can be reported with and without them. A Testing scan is "unseen" when
no Training scan comes from the same source slice (`source_image`; mirrored copies included).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import DataLayoutError
from core.settings import settings

INDEX_FILE = "index.csv"
MASKS_DIR_NAME = "brain-tumor-mri-masks"


@dataclass(frozen=True)
class MaskRow:
    """One row of index.csv that has a mask."""

    split: str
    class_name: str
    file: str          # image path relative to the dataset root, e.g. Testing/glioma/Te-gl_0010.jpg
    mask: str          # mask path relative to the masks folder
    area_fraction: float
    flag: str
    source_image: str

    @property
    def flagged(self) -> bool:
        return bool(self.flag)

    @property
    def stem(self) -> str:
        return Path(self.file).stem


@dataclass
class MaskIndex:
    """Every mask row of a masks folder, with the set of source slices that occur in Training."""

    root: Path
    rows: list[MaskRow]

    def __post_init__(self) -> None:
        self._by_file = {r.file: r for r in self.rows}
        self._by_stem = {r.stem: r for r in self.rows}
        self.training_sources = {r.source_image for r in self.rows if r.split == "Training" and r.source_image}

    def select(self, split: str, flagged: bool = True) -> list[MaskRow]:
        """Rows of one split; `flagged=False` drops the rows with a flag."""
        return [r for r in self.rows if r.split == split and (flagged or not r.flagged)]

    def unseen(self, row: MaskRow) -> bool:
        """True when no Training scan shares this scan's source slice (strict unseen subset)."""
        return row.split != "Training" and row.source_image not in self.training_sources

    def for_file(self, relpath: str) -> MaskRow | None:
        """The row of a dataset-relative image path (`Testing/glioma/x.jpg`), or None."""
        return self._by_file.get(relpath.replace(os.sep, "/"))

    def for_name(self, filename: str) -> MaskRow | None:
        """The row whose image has this file name stem (an uploaded dataset scan), or None."""
        return self._by_stem.get(Path(filename).stem)

    def load(self, row: MaskRow, size: int | None = None) -> np.ndarray:
        """The mask as bool (H, W); resized (nearest after area averaging, threshold 0.5) to `size` if given."""
        mask = cv2.imread(str(self.root / row.mask), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataLayoutError(f"cannot read mask {self.root / row.mask}")
        return fit_mask(mask.astype(np.float32) / 255.0, size)


def fit_mask(mask: np.ndarray, size: int | None) -> np.ndarray:
    """A mask (values in 0-1) as bool, resized to `size` × `size` if given (area averaging, threshold 0.5)."""
    mask = np.asarray(mask, np.float32)
    if size is not None and mask.shape != (size, size):
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    return mask >= 0.5


def default_masks_dir(data_root: str | Path | None) -> Path | None:
    """`BRAINSCAN_MASKS`, else the masks folder beside the dataset root (None when neither exists)."""
    env = settings().masks
    if env:
        return env
    if data_root is None:
        return None
    candidate = Path(data_root).expanduser().resolve().parent / MASKS_DIR_NAME
    return candidate if (candidate / INDEX_FILE).is_file() else None


def load_mask_index(root: str | Path) -> MaskIndex:
    """Read index.csv of a masks folder (rows without a mask are skipped)."""
    root = Path(root).expanduser()
    path = root / INDEX_FILE
    if not path.is_file():
        raise DataLayoutError(f"{root} has no {INDEX_FILE}; expected the brain-tumor-mri-masks folder")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"split", "class", "file", "mask", "mask_area_fraction", "flag", "source_image"}
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise DataLayoutError(f"{path} lacks column(s) {sorted(missing)}")
        rows = [MaskRow(r["split"], r["class"], r["file"], r["mask"], float(r["mask_area_fraction"] or 0.0),
                        r["flag"].strip(), r["source_image"]) for r in reader if r["mask"]]
    return MaskIndex(root, rows)
