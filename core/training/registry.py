"""The models the app can use: the bundled/default model and finished training runs, with key numbers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BrainScanError
from core.model.card import CARD_FILE, MODEL_FILE, ModelCard, load_card
from core.model.factory import default_model_dir
from core.settings import settings
from core.training import run_files as rf

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


def _entry(path: Path, source: str) -> ModelEntry:
    try:
        card = load_card(path)
    except BrainScanError:
        card = None
    return ModelEntry(path, source, card, model_mtime(path))


def finished_run_entry(run_dir: Path) -> ModelEntry | None:
    """The run's model if the run finished and its model folder is complete (a non-empty model file and a
    readable card holding the test evaluation); None for unfinished, cancelled, failed or damaged runs."""
    if rf.read_status(run_dir).get("state") != "finished":
        return None
    model_dir = Path(run_dir) / rf.MODEL_SUBDIR
    try:
        if (model_dir / MODEL_FILE).stat().st_size == 0:
            return None
    except OSError:
        return None
    entry = _entry(model_dir, f"run {Path(run_dir).name}")
    if entry.card is None or "test" not in (entry.card.evaluation or {}):
        return None
    return entry


def list_models(runs: Path | None) -> list[ModelEntry]:
    """The default model (if present) then the finished runs' runs/*/model folders, newest first."""
    entries = []
    default = default_model_dir()
    if (default / CARD_FILE).is_file():
        entries.append(_entry(default, "BRAINSCAN_MODEL" if settings().model else "bundled"))
    if runs is not None and Path(runs).is_dir():
        finished = [e for p in Path(runs).iterdir() if p.is_dir() and (e := finished_run_entry(p)) is not None]
        entries += sorted(finished, key=lambda e: e.mtime, reverse=True)
    return entries


def key_numbers(card: ModelCard | None) -> dict[str, Any]:
    """The few numbers shown beside a model in the picker."""
    if card is None:
        return {}
    numbers: dict[str, Any] = {"backbone": card.backbone, "input": f"{card.image_size} px",
                               "weights": card.weights_origin}
    evaluation = card.evaluation or {}
    for split, label, metric in (("test", "test accuracy", "accuracy"), ("test_unseen", "unseen-test accuracy", "accuracy"),
                                 ("test_leakage_free", "leakage-free macro-F1", "macro_f1")):
        if metric in evaluation.get(split, {}):
            numbers[label] = round(float(evaluation[split][metric]), 4)
    if card.training.get("epochs_run"):
        numbers["epochs"] = card.training["epochs_run"]
    return numbers


def history_for(model_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch training history: model_dir/history.json, else the run folder's history.json."""
    for path in (Path(model_dir) / rf.HISTORY_FILE, Path(model_dir).parent / rf.HISTORY_FILE):
        rows = rf.read_json(path)
        if isinstance(rows, list):
            return rows
    return []


def sample_scans() -> list[Path]:
    """The bundled sample scans (one per class)."""
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SAMPLE_EXTENSIONS)


def sample_class(path: Path) -> str | None:
    """The class folder a bundled sample came from, read from its file name (Te-gl_0014.jpg -> glioma)."""
    return SAMPLE_PREFIXES.get(Path(path).name[3:5])
