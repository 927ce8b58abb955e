"""DICOM files built with pydicom for tests: single-frame MR slices of one series, and multi-frame files."""
from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

SERIES_UID = "1.2.826.0.1.3680043.8.498.1"
STUDY_UID = "1.2.826.0.1.3680043.8.498.2"


def _base(gray: np.ndarray, patient_id: str, series_uid: str, study_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19600102"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.SeriesDescription = "T1 AX POST GD"
    ds.Manufacturer = "ACME Imaging"
    ds.SliceThickness = "5.0"
    ds.PixelSpacing = ["0.9", "0.9"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = gray.shape[-2:]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    return ds


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def mr_slice(gray: np.ndarray, z: float, instance: int, patient_id: str = "PID-1", series_uid: str = SERIES_UID,
             study_uid: str = STUDY_UID) -> bytes:
    """One single-frame MR slice (uint8 image scaled to 12 bits) at height z along the axial normal."""
    ds = _base(gray, patient_id, series_uid, study_uid)
    ds.ImagePositionPatient = ["-100", "-100", f"{z}"]
    ds.InstanceNumber = instance
    ds.PixelData = (gray.astype(np.uint16) * 16).tobytes()
    return _bytes(ds)


def mr_multiframe(grays: list[np.ndarray], zs: list[float]) -> bytes:
    """One multi-frame MR file with per-frame positions (enhanced-MR style functional groups)."""
    ds = _base(grays[0], "PID-1", SERIES_UID, STUDY_UID)
    ds.NumberOfFrames = len(grays)
    frames = []
    for z in zs:
        position = Dataset()
        position.ImagePositionPatient = ["-100", "-100", f"{z}"]
        group = Dataset()
        group.PlanePositionSequence = [position]
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = (np.stack(grays).astype(np.uint16) * 16).tobytes()
    return _bytes(ds)
