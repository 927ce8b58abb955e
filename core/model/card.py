"""The model card: the one place that says a model's class order, input size and preprocessing.

Everything that feeds a model (training, prediction, explainers, metrics) reads these values from
the card instead of repeating them as literals.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelNotFoundError
from core.io.atomic import atomic_write_text
from core.model.card_records import EvaluationRecord, TrainingRecord

CARD_FILE = "model_card.json"
MODEL_FILE = "model.keras"

CLASS_DESCRIPTIONS = {
    "glioma": "Glioma: an intra-axial tumour arising from glial cells.",
    "meningioma": "Meningioma: an extra-axial tumour arising from the meninges.",
    "notumor": "No tumour: no tumour pattern detected on this slice.",
    "pituitary": "Pituitary tumour: a lesion of the sellar/pituitary region.",
}
CLASS_LABELS = {
    "glioma": "Glioma",
    "meningioma": "Meningioma",
    "notumor": "No tumour",
    "pituitary": "Pituitary tumour",
}


DEFAULT_PREPROCESSING = {
    "decode": "RGB uint8 (grayscale replicated to 3 channels; DICOM windowed)",
    "resize": "cv2.INTER_AREA to image_size x image_size",
    "input_range": "0-255 float32; the network rescales/normalises internally",
}
HEAD_CROP = "head: cropped to the head's bounding box (4% margin), padded to a square with black, then resized"


@dataclass
class ModelCard:
    """What a saved model is and how it was made and measured."""

    class_names: list[str]
    image_size: int
    backbone: str
    weights_origin: str
    feature_layer: str
    model_file: str = MODEL_FILE
    name: str = "model"
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PREPROCESSING))
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def crop(self) -> str:
        """The preprocessing crop the model was trained with ("none" or "head")."""
        return str(self.preprocessing.get("crop", "none"))

    @property
    def training_record(self) -> TrainingRecord:
        """The training part, typed (the card keeps the JSON object it reads and writes)."""
        return TrainingRecord.from_json(self.training)

    @property
    def evaluation_record(self) -> EvaluationRecord:
        """The evaluation part, typed (the card keeps the JSON object it reads and writes)."""
        return EvaluationRecord.from_json(self.evaluation)

    def to_dict(self) -> dict[str, Any]:
        """The card as the JSON object `save` writes."""
        return asdict(self)

    def save(self, model_dir: Path) -> Path:
        """Write the card atomically (the app may read it at any moment)."""
        return atomic_write_text(Path(model_dir) / CARD_FILE,
                                 json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def load_card(model_dir: str | Path) -> ModelCard:
    """Read `model_card.json` from a model folder; a missing or broken card is a user error."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"No model card at {path}. A model folder holds {MODEL_FILE} and {CARD_FILE}.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ModelCard(**raw)
    except (ValueError, TypeError, OSError) as exc:  # bad JSON or UTF-8, not a card's fields, unreadable
        raise ModelNotFoundError(f"The model card {path} is unreadable: {exc}") from exc


def class_label(name: str) -> str:
    """Clinical wording of a class folder name."""
    return CLASS_LABELS.get(name, name)
