"""Secondary Capture images of explanation overlays, and the case report as an Encapsulated PDF, for the PACS.

Both copy the patient and study modules from a source image of the study (nothing else about the patient is
added), carry the app as the equipment and reference the source images they were derived from.
"""
from __future__ import annotations

from copy import copy
from datetime import datetime
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian

MANUFACTURER = "BrainScan XAI"
PDF_TITLE = "BrainScan XAI case report (research use only - not a medical device)"
_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))  # patient axes x, y, z: + and - directions
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyDate",
         "StudyTime", "AccessionNumber", "StudyID")  # the type-2 patient / study attributes every result carries


def type2_filled(source: Dataset) -> Dataset:
    """A shallow copy of a source image with its absent type-2 patient/study attributes present and empty (DICOM's
    "unknown"; highdicom reads them all): nothing is added to what the source says about the patient."""
    filled = copy(source)
    for keyword in TYPE2:
        if keyword not in filled:
            setattr(filled, keyword, "")
    return filled


def _direction(vector: list[float]) -> str:
    """The patient-orientation letter of a direction cosine (its dominant axis)."""
    axis = int(np.argmax(np.abs(vector)))
    return _LETTERS[axis][0 if vector[axis] > 0 else 1]


def patient_orientation(source: Dataset) -> tuple[str, str] | None:
    """(row, column) directions of the source slice from Image Orientation (Patient); None when it has none."""
    cosines = [float(v) for v in getattr(source, "ImageOrientationPatient", None) or []]
    return (_direction(cosines[:3]), _direction(cosines[3:])) if len(cosines) == 6 else None


def _references(sources: list[Dataset]) -> list[Dataset]:
    out = []
    for source in sources:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.SOPClassUID
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        out.append(ref)
    return out


def secondary_capture(image: np.ndarray, title: str, source: Dataset, series: tuple[str, int], instance: int,
                      equipment: dict[str, Any]) -> hd.sc.SCImage:
    """One overlay picture (RGB uint8, legend burned in) as a Secondary Capture in the source study."""
    orientation = patient_orientation(source)
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=np.ascontiguousarray(image, np.uint8), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=series[0], series_number=series[1],
        sop_instance_uid=hd.UID(), instance_number=instance, manufacturer=MANUFACTURER,
        patient_orientation=orientation or ("L", "P"), **equipment)
    if orientation is None:
        capture.PatientOrientation = ""  # type 2: unknown rather than guessed
    if "BodyPartExamined" in source:
        capture.BodyPartExamined = source.BodyPartExamined  # the same anatomy (lets a validator see it is unpaired)
    elif "Laterality" not in capture:
        capture.Laterality = ""  # type 2C: unknown without the body part
    capture.ConversionType = "WSD"
    capture.BurnedInAnnotation = "YES"
    capture.DerivationDescription = title[:1024]
    capture.SourceImageSequence = _references([source])
    return capture


def encapsulated_pdf(pdf: bytes, sources: list[Dataset], series: tuple[str, int],
                     equipment: dict[str, Any]) -> hd.SOPClass:
    """The case report's PDF as an Encapsulated PDF instance (new series, modality DOC) in the source study."""
    source = sources[0]
    document = hd.SOPClass(study_instance_uid=source.StudyInstanceUID, series_instance_uid=series[0],
                           series_number=series[1], sop_instance_uid=hd.UID(), sop_class_uid=EncapsulatedPDFStorage,
                           instance_number=1, modality="DOC",
                           manufacturer=MANUFACTURER, transfer_syntax_uid=ExplicitVRLittleEndian, **equipment)
    document.copy_patient_and_study_information(source)
    now = datetime.now()
    document.ContentDate, document.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    document.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    document.ConversionType = "WSD"
    document.BurnedInAnnotation = "YES"
    document.DocumentTitle = PDF_TITLE
    document.ConceptNameCodeSequence = [hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging report")]
    document.SourceInstanceSequence = _references(sources)
    document.MIMETypeOfEncapsulatedDocument = "application/pdf"
    document.EncapsulatedDocumentLength = len(pdf)
    document.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return document
