"""Gate layer 1: a DICOM file must say Modality MR; anything else is refused with what it is."""
from __future__ import annotations

ACCEPTED = {"MR"}
# DICOM Modality codes (PS3.3 C.7.3.1.1.1) in plain words.
MODALITY_WORDS = {
    "CT": "a CT scan", "US": "an ultrasound image", "CR": "an X-ray (computed radiography)",
    "DX": "an X-ray (digital radiography)", "XA": "an X-ray angiogram", "RF": "a fluoroscopy image",
    "MG": "a mammogram", "IO": "a dental X-ray", "PX": "a panoramic dental X-ray", "NM": "a nuclear-medicine scan",
    "PT": "a PET scan", "SEG": "a segmentation object", "RTDOSE": "a radiotherapy dose object",
    "RTPLAN": "a radiotherapy plan", "RTSTRUCT": "a radiotherapy structure set", "RTIMAGE": "a radiotherapy image",
    "RTRECORD": "a radiotherapy record", "SR": "a structured report", "ECG": "an ECG", "OT": "an image of "
    "unspecified modality ('OT', other)", "SC": "a secondary-capture image", "XC": "a photograph",
    "ES": "an endoscopy image", "OP": "an ophthalmic photograph", "OPT": "an ophthalmic OCT scan",
    "SM": "a microscopy slide", "GM": "a microscopy image", "DOC": "a document", "KO": "a key-object note",
    "PR": "a presentation state", "REG": "a registration object", "BI": "a biomagnetic image",
}


def check(modality: str | None) -> str | None:
    """None when the file may be an MRI (Modality MR, or no DICOM Modality at all); else the reason it is not."""
    if modality is None or modality.upper() in ACCEPTED:
        return None
    code = modality.upper()
    what = MODALITY_WORDS.get(code, f"a '{code}' object")
    return f"This looks like {what}, not an MRI (DICOM Modality {code}); the model reads brain MRI slices only."
