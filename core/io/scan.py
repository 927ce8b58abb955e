"""One upload decoded once: its pixels and the header facts that the input gate, the assessment and the
DICOM panel read, so that no one reads or decodes the same bytes again.

A file whose pixels cannot be decoded is still a `Scan` (pixels None, with the decoder's one-line reason) as long
as its bytes could be read: a CT whose pixel data is broken is refused by its Modality, not reported as an error.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ImageDecodeError
from core.io.images import decode_raster, dicom_modality, dicom_pixels, is_dicom_file, read_bytes, read_dicom
from core.io.series import technical_header


@dataclass(frozen=True)
class Scan:
    """A decoded file: RGB uint8 pixels (read-only; None when undecodable, `problem` says why) and its facts."""

    name: str
    sha256: str
    pixels: np.ndarray | None
    modality: str | None = None          # the DICOM Modality (upper case); None when not DICOM or absent
    non_finite_share: float = 0.0        # NaN/inf share of the raw pixels (float TIFFs)
    header: Mapping[str, str] = field(default_factory=dict)  # `technical_header` of a DICOM; {} otherwise
    problem: str | None = None           # the decoder's reason when `pixels` is None

    @property
    def rgb(self) -> np.ndarray:
        """The pixels, or the ImageDecodeError that kept them from being decoded."""
        if self.pixels is None:
            raise ImageDecodeError(self.problem or f"{self.name}: the pixels could not be decoded")
        return self.pixels


def _frozen(pixels: np.ndarray) -> np.ndarray:
    pixels.flags.writeable = False  # shared by every consumer (and caches): nobody may change it in place
    return pixels


def _dicom_scan(data: bytes, name: str, digest: str) -> Scan:
    """A DICOM file: header facts from the one parse, then its pixels; a broken part leaves the others."""
    try:
        ds = read_dicom(data, name)
    except ImageDecodeError as exc:  # unparsable as a whole: its Modality may still be readable on its own
        return Scan(name, digest, None, dicom_modality(data), problem=str(exc))
    modality = str(ds.get("Modality", "") or "").strip().upper() or None
    header = technical_header(ds)
    try:
        pixels = dicom_pixels(ds, name)
    except ImageDecodeError as exc:
        return Scan(name, digest, None, modality, header=header, problem=str(exc))
    return Scan(name, digest, _frozen(pixels), modality, header=header)


def decode_scan(source: str | Path | bytes, name: str | None = None) -> Scan:
    """Read a file (path or bytes) once and decode it into a `Scan`. Files that cannot be read at all (missing,
    over the size limit, empty) raise ImageDecodeError; undecodable pixels are the Scan's `problem`."""
    data, name = read_bytes(source, name)
    digest = hashlib.sha256(data).hexdigest()
    if is_dicom_file(data, name):
        return _dicom_scan(data, name, digest)
    try:
        pixels, share = decode_raster(data, name)
    except ImageDecodeError as exc:
        return Scan(name, digest, None, problem=str(exc))
    return Scan(name, digest, _frozen(pixels), non_finite_share=share)
