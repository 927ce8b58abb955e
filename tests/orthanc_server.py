"""A real Orthanc PACS for the tests: started on a free loopback port with the DICOMweb plugin, its own temporary
storage and JSON config, seeded with one study (an MR series built from real Kaggle scans with realistic headers,
and a small CT series), stopped at the end. `.ci/pacs-deps.sh` installs Orthanc; tests skip with the reason when it
is absent. Shared by tests/test_pacs.py, the browser test, the screenshot script and benchmarks/pacs.py.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import CTImageStorage, generate_uid

from tests.dicom_builder import mr_slice
from tests.streamlit_server import free_port

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
MISSING = (None if ORTHANC.exists() and DICOMWEB_PLUGIN.exists() else
           f"Orthanc ({ORTHANC}) or its DICOMweb plugin ({DICOMWEB_PLUGIN}) is missing: run .ci/pacs-deps.sh")
PATIENT_ID = "PACS-TEST-001"
ACCESSION = "ACC-2026-0042"
STUDY_DATE = "20261130"
USER, PASSWORD = "radiology", "s3cret-Pa55word"


@dataclass
class Orthanc:
    """A running Orthanc: its DICOMweb URL, process and what it was seeded with."""

    url: str
    rest: str
    process: subprocess.Popen
    auth: tuple[str, str] | None = None
    study_uid: str = ""
    mr_series_uid: str = ""
    ct_series_uid: str = ""
    mr_slices: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        """Kill the server at once (as a crash would)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _wait_up(rest: str, process: subprocess.Popen, auth: tuple[str, str] | None, log: Path) -> None:
    import requests

    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited during start-up:\n{log.read_text()[-2000:]}")
        try:
            if requests.get(f"{rest}/system", auth=auth, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Orthanc did not start in 30 s:\n{log.read_text()[-2000:]}")


@contextlib.contextmanager
def orthanc(folder: Path, users: dict[str, str] | None = None) -> Iterator[Orthanc]:
    """Orthanc with DICOMweb on 127.0.0.1 (no DICOM port), storage under `folder`; basic auth with `users`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {"Name": "BrainScanTest", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": bool(users), "RegisteredUsers": users or {}, "HttpTimeout": 10,
              "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = folder / "orthanc.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(ORTHANC), str(folder / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    rest = f"http://127.0.0.1:{port}"
    auth = next(iter(users.items())) if users else None
    server = Orthanc(f"{rest}/dicom-web", rest, process, auth)
    try:
        _wait_up(rest, process, auth, log)
        yield server
    finally:
        server.stop()


def _with_headers(data: bytes, series_number: int, description: str, frame_uid: str, modality: str = "MR") -> bytes:
    """A builder slice with the study-level headers a scanner writes (dates, accession, numbers, body part)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = ACCESSION
    ds.StudyID = "42"
    ds.StudyDescription = "MRI BRAIN WITH AND WITHOUT CONTRAST"
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.PatientSex = "F"
    ds.BodyPartExamined = "BRAIN" if modality == "MR" else "HEAD"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = ds.ImagePositionPatient[2]
    if modality == "CT":
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = "120"
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ds.AcquisitionNumber = 1
    else:
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength, ds.MagneticFieldStrength = "500", "15", "1", "1.5"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def seed_study(server: Orthanc, scans: list[Path], ct_slices: int = 3) -> None:
    """One study: an axial MR series of `scans` (5 mm apart) and a CT series of `ct_slices` synthetic slices."""
    import cv2
    import requests

    study, mr_uid, ct_uid, frame_uid = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    files = []
    for i, path in enumerate(scans):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        files.append(_with_headers(mr_slice(gray, 5.0 * i, i + 1, PATIENT_ID, mr_uid, study), 3, "AX T1 POST GD", frame_uid))
    rng = np.random.default_rng(0)
    for i in range(ct_slices):
        gray = np.clip(rng.normal(90, 30, (128, 128)), 0, 255).astype(np.uint8)
        files.append(_with_headers(mr_slice(gray, 5.0 * i, i + 1, PATIENT_ID, ct_uid, study), 2, "CT HEAD", frame_uid, "CT"))
    for data in files:
        answer = requests.post(f"{server.rest}/instances", data=data, auth=server.auth, timeout=30)
        answer.raise_for_status()
    server.study_uid, server.mr_series_uid, server.ct_series_uid, server.mr_slices = study, mr_uid, ct_uid, scans


def kaggle_series(data_root: Path, n: int = 24, label: str = "glioma") -> list[Path]:
    """`n` real test scans of one class (sorted, so every run seeds the same series)."""
    return sorted((data_root / "Testing" / label).glob("*.jpg"))[:n]
