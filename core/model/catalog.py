"""The models and sample scans the app offers: a model folder as a `ModelEntry` with its card and key numbers,
the bundled (or BRAINSCAN_MODEL) model, and the bundled sample scans. Finished training runs are added to the
list by the training layer (`core.training.registry`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BrainScanError
from core.model.card import CARD_FILE, MODEL_FILE, ModelCard, load_card
from core.model.factory import default_model_dir
from core.settings import settings

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "samples"
SAMPLE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".dcm"}
SAMPLE_PREFIXES = {"gl": "glioma", "me": "meningioma", "no": "notumor", "pi": "pituitary"}


@dataclass
class ModelEntry:
    """One selectable model folder and its card (None when the card cannot be read)."""

    path: Path
    source: str
    card: ModelCard | None
    mtime: float

    @property
    def key(self) -> str:
        """Cache key: changes when the model file is replaced."""
        return f"{self.path.resolve()}@{self.mtime:.0f}"

    @property
    def label(self) -> str:
        return self.card.name if self.card else self.path.name


def model_mtime(model_dir: Path) -> float:
    """Modification time of the model file (0 when missing)."""
    try:
        return max((model_dir / name).stat().st_mtime for name in (MODEL_FILE, CARD_FILE))
    except OSError:
        return 0.0


def model_entry(path: Path, source: str) -> ModelEntry:
    """The entry of a model folder; `source` says where it came from ("bundled", "run 2026...")."""
    try:
        card = load_card(path)
    except BrainScanError:
        card = None
    return ModelEntry(path, source, card, model_mtime(path))


def default_entry() -> ModelEntry | None:
    """The default model (BRAINSCAN_MODEL, else the bundled one), or None when its folder has no card."""
    default = default_model_dir()
    if not (default / CARD_FILE).is_file():
        return None
    return model_entry(default, "BRAINSCAN_MODEL" if settings().model else "bundled")


KEY_METRICS = (("test", "test accuracy", "accuracy"), ("test_unseen", "unseen-test accuracy", "accuracy"),
               ("test_leakage_free", "leakage-free macro-F1", "macro_f1"))


def key_numbers(card: ModelCard | None) -> dict[str, Any]:
    """The few numbers shown beside a model in the picker (from the card's typed records; a card written by a
    newer version shows its recipe only)."""
    if card is None:
        return {}
    numbers: dict[str, Any] = {"backbone": card.backbone, "input": f"{card.image_size} px",
                               "weights": card.weights_origin}
    try:
        splits, epochs = card.evaluation_record.splits, card.training_record.epochs_run
    except BrainScanError:
        return numbers
    for split, label, metric in KEY_METRICS:
        value = splits[split].metrics.get(metric) if split in splits else None
        if value is not None:
            numbers[label] = round(float(value), 4)
    if epochs:
        numbers["epochs"] = epochs
    return numbers


def sample_scans() -> list[Path]:
    """The bundled sample scans (one per class)."""
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SAMPLE_EXTENSIONS)


def sample_class(path: Path) -> str | None:
    """The class folder a bundled sample came from, read from its file name (Te-gl_0014.jpg -> glioma)."""
    return SAMPLE_PREFIXES.get(Path(path).name[3:5])
