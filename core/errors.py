"""Typed errors a user can cause; the CLI and the UI show their message instead of a traceback."""


class BrainScanError(Exception):
    """Base class for every error caused by user input (files, folders, models, options)."""


class ImageDecodeError(BrainScanError):
    """A file could not be read as an image (corrupt, unsupported format, empty DICOM)."""


class DataLayoutError(BrainScanError):
    """A data folder does not have the expected Training/Testing/<class> layout."""


class ModelNotFoundError(BrainScanError):
    """A model folder is missing its model file or model card, or they do not match."""


class TrainingConfigError(BrainScanError):
    """Training options are inconsistent (unknown backbone, bad weights file, locked run...)."""


class ExplainError(BrainScanError):
    """An explanation or XAI metric was asked for with options that cannot work."""


class LauncherAccessError(BrainScanError):
    """The training launcher refused: not authorised, locked out, or a path outside the allowed folders."""


class CaseError(BrainScanError):
    """A case id, a DICOM series or an archive upload cannot be accepted (bad id, mixed series, zip too large)."""


class AuditError(BrainScanError):
    """The audit store cannot be opened or written (bad BRAINSCAN_DB_URL, unreachable server)."""


class CalibrationError(BrainScanError):
    """The input gate, calibration or conformal sets cannot be fitted (too few scans) or used."""


class PacsError(BrainScanError):
    """The PACS cannot be used: not configured, down, slow, refused the credentials, answered garbage, or a series
    is over the retrieval limits (the message never holds credentials)."""


class BatchError(BrainScanError):
    """A batch job cannot start or continue: a missing input, an unusable --out, a Ray cluster that cannot be
    reached."""
