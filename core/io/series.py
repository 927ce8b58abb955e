"""DICOM series in: several single-frame files of one series, one multi-frame file, or a zip of either.

Slices are ordered along the slice normal (ImagePositionPatient projected on the cross product of
ImageOrientationPatient's two directions), else by InstanceNumber, else as uploaded. Files of several
series or patients in one upload are refused. Zip archives are opened with limits on the number of members
and on their total uncompressed size (read, not declared), so a zip bomb stops early.

`technical_header` is the only view of a DICOM header the app shows: technical fields, never names, ids or dates.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import cv2
import numpy as np

from core.errors import BrainScanError, CaseError, ImageDecodeError
from core.io.images import dicom_pixel_budget, read_dicom, read_image

MAX_ARCHIVE_MEMBERS = 2000
MAX_ARCHIVE_BYTES = 1 << 30  # 1 GiB uncompressed in all
MAX_SLICES = 1000
TECHNICAL_FIELDS = {
    "Modality": "Modality",
    "SeriesDescription": "Series description",
    "SequenceName": "Sequence",
    "MRAcquisitionType": "Acquisition",
    "SliceThickness": "Slice thickness (mm)",
    "PixelSpacing": "Pixel spacing (mm)",
    "MagneticFieldStrength": "Field strength (T)",
    "Manufacturer": "Manufacturer",
    "ManufacturerModelName": "Scanner model",
}


def is_dicom(data: bytes) -> bool:
    """True for a DICOM Part 10 file (the DICM preamble)."""
    return data[128:132] == b"DICM"


def is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def expand_archives(files: dict[str, bytes], max_members: int = MAX_ARCHIVE_MEMBERS,
                    max_bytes: int = MAX_ARCHIVE_BYTES) -> dict[str, bytes]:
    """Files with every zip replaced by its members (folders and hidden files skipped), within the limits."""
    out: dict[str, bytes] = {}
    total = 0
    for name, data in files.items():
        if not is_zip(data):
            out[name] = data
            continue
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = [m for m in archive.infolist() if not m.is_dir() and not any(
                part.startswith(("__MACOSX", ".")) for part in PurePosixPath(m.filename).parts)]
            if len(members) > max_members:
                raise CaseError(f"{name}: the archive holds {len(members)} files; at most {max_members} are accepted")
            for member in members:
                with archive.open(member) as handle:
                    content = handle.read(max_bytes - total + 1)
                total += len(content)
                if total > max_bytes:
                    raise CaseError(f"{name}: the archive unpacks to more than {max_bytes >> 20} MiB; "
                                    "upload the series in smaller parts")
                out[f"{name}/{member.filename}"] = content
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
            raise CaseError(f"{name}: cannot open the zip archive ({exc})") from exc
    return out


def _plane(orientation: Any) -> str | None:
    """Axial, coronal or sagittal from ImageOrientationPatient (the slice normal's main axis)."""
    try:
        values = [float(v) for v in orientation]
    except (TypeError, ValueError):
        return None
    if len(values) != 6:
        return None
    normal = np.cross(values[:3], values[3:])
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _orientation(ds: Any) -> Any:
    if "ImageOrientationPatient" in ds:
        return ds.ImageOrientationPatient
    try:
        return ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    except (AttributeError, IndexError, KeyError):
        return None


def technical_header(ds: Any) -> dict[str, str]:
    """The header's technical fields that are present (never names, ids or dates), plus the plane."""
    out = {}
    for keyword, label in TECHNICAL_FIELDS.items():
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        if keyword == "PixelSpacing":
            value = _spacing(value)
        out[label] = str(value)
    plane = _plane(_orientation(ds))
    if plane:
        out["Plane"] = plane
    frames = _frames(ds)
    if frames > 1:
        out["Frames"] = str(frames)
    return out


def _spacing(value: Any) -> str:
    """PixelSpacing as 'row × column' (as written when its values are not numbers)."""
    try:
        return " × ".join(f"{float(v):g}" for v in value)
    except (TypeError, ValueError):
        return str(value)


def _frames(ds: Any) -> int:
    """NumberOfFrames (1 when absent or not a number: the decoder reports a malformed header itself)."""
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def header_of(data: bytes, name: str = "upload") -> dict[str, str]:
    """Technical header of one DICOM file's bytes (empty for other images)."""
    return technical_header(read_dicom(data, name)) if is_dicom(data) else {}


def _frame_rgb(ds: Any, pixels: np.ndarray, name: str) -> np.ndarray:
    """One monochrome frame windowed as the single-file decoder does (modality LUT, VOI window, MONOCHROME1)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if pixels.ndim == 3:  # colour frames (pydicom converts YBR to RGB)
        if pixels.shape[2] != 3 or min(pixels.shape[:2]) < 8:
            raise ImageDecodeError(f"{name}: unsupported frame shape {pixels.shape}")
        return np.ascontiguousarray(pixels.astype(np.uint8))
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        values = apply_voi_lut(values, ds).astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    image = np.zeros(values.shape, np.uint8) if hi <= lo else np.clip(
        (values - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        image = 255 - image
    if image.ndim != 2 or min(image.shape) < 8:
        raise ImageDecodeError(f"{name}: unsupported frame shape {image.shape}")
    return np.repeat(image[:, :, None], 3, axis=2)


@dataclass
class SeriesSlice:
    """One slice: its position in the series, the decoded image and the lossless PNG the app classifies."""

    number: int
    image: np.ndarray
    png: bytes
    position: float | None = None
    instance: int | None = None

    @property
    def label(self) -> str:
        where = f" · {self.position:+.1f} mm" if self.position is not None else ""
        return f"Slice {self.number}{where}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


@dataclass
class Series:
    """The ordered slices of one series and its technical header."""

    slices: list[SeriesSlice]
    header: dict[str, str] = field(default_factory=dict)
    ordered_by: str = "upload order"
    modality: str | None = None  # the DICOM Modality, for the input gate's first layer


def _normal(ds: Any) -> np.ndarray | None:
    orientation = _orientation(ds)
    try:
        values = [float(v) for v in orientation]
    except (TypeError, ValueError):
        return None
    return np.cross(values[:3], values[3:]) if len(values) == 6 else None


def _frame_positions(ds: Any, count: int) -> list[Any]:
    try:
        return [f.PlanePositionSequence[0].ImagePositionPatient for f in ds.PerFrameFunctionalGroupsSequence][:count]
    except (AttributeError, IndexError, KeyError):
        return []


def _same(values: list[Any], what: str) -> None:
    distinct = {v for v in values if v}
    if len(distinct) > 1:
        raise CaseError(f"the upload mixes {len(distinct)} different {what}; upload the files of one series "
                        "of one patient at a time")


def series_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The one rule for "this upload holds a series": its DICOM files when there are several of them, or its one
    DICOM file when that is multi-frame; {} otherwise (every file is then a scan of its own). Other files of the
    upload are never part of a series."""
    dicoms = {n: d for n, d in files.items() if is_dicom(d)}
    if len(dicoms) > 1:
        return dicoms
    if len(dicoms) == 1:
        name, data = next(iter(dicoms.items()))
        try:
            return dicoms if "Frames" in header_of(data, name) else {}
        except BrainScanError:
            return {}  # unreadable header: classified (and refused or reported) as a single file
    return {}


def load_series(files: dict[str, bytes]) -> Series:
    """Ordered slices of the DICOM files (single-frame files of one series, or one multi-frame file)."""
    if not files:
        raise CaseError("no DICOM files to read")
    others = [n for n, d in files.items() if not is_dicom(d)]
    if others:
        raise CaseError(f"a DICOM series must be uploaded alone; {len(others)} other file(s) came with it "
                        f"(e.g. {others[0]})")
    datasets = [(name, data, read_dicom(data, name)) for name, data in files.items()]
    _same([str(ds.get("PatientID", "")) for _, _, ds in datasets], "patients")
    _same([str(ds.get("StudyInstanceUID", "")) for _, _, ds in datasets], "studies")
    _same([str(ds.get("SeriesInstanceUID", "")) for _, _, ds in datasets], "series")
    multi = [n for n, _, ds in datasets if int(ds.get("NumberOfFrames", 1) or 1) > 1]
    if multi and len(datasets) > 1:
        raise CaseError(f"a multi-frame DICOM ({multi[0]}) must be uploaded alone")
    entries: list[tuple[np.ndarray, float | None, int | None]] = []
    if multi:
        name, _, ds = datasets[0]
        dicom_pixel_budget(ds, name)  # refused from the header, before any pixel is decoded
        declared = int(ds.get("NumberOfFrames", 1) or 1)
        if declared > MAX_SLICES:
            raise CaseError(f"{name}: {declared} frames; at most {MAX_SLICES} are accepted")
        try:
            frames = ds.pixel_array
        except Exception as exc:  # pydicom raises many types for compressed or corrupt data
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ImageDecodeError(f"{name}: cannot read DICOM pixel data ({message})") from exc
        normal = _normal(ds)
        positions = _frame_positions(ds, len(frames))
        for i, frame in enumerate(frames):
            pos = float(np.dot([float(v) for v in positions[i]], normal)) if normal is not None and len(
                positions) == len(frames) else None
            entries.append((_frame_rgb(ds, frame, name), pos, i + 1))
    else:
        if len(datasets) > MAX_SLICES:
            raise CaseError(f"{len(datasets)} slices; at most {MAX_SLICES} are accepted")
        for name, data, ds in datasets:
            normal = _normal(ds)
            pos = (float(np.dot([float(v) for v in ds.ImagePositionPatient], normal))
                   if normal is not None and "ImagePositionPatient" in ds else None)
            instance = int(ds.InstanceNumber) if ds.get("InstanceNumber") not in (None, "") else None
            entries.append((read_image(data, name), pos, instance))
    if all(e[1] is not None for e in entries):
        order, ordered_by = sorted(range(len(entries)), key=lambda i: (entries[i][1], i)), "position along the slice normal"
    elif all(e[2] is not None for e in entries):
        order, ordered_by = sorted(range(len(entries)), key=lambda i: (entries[i][2], i)), "instance number"
    else:
        order, ordered_by = list(range(len(entries))), "upload order"
    slices = []
    for number, i in enumerate(order, start=1):
        image, pos, instance = entries[i]
        ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - encoding a uint8 RGB array does not fail
            raise ImageDecodeError("cannot encode a slice")
        slices.append(SeriesSlice(number, image, png.tobytes(), pos, instance))
    modality = str(datasets[0][2].get("Modality", "") or "").strip() or None
    return Series(slices, technical_header(datasets[0][2]), ordered_by, modality)
