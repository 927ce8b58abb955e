"""What identifies a model in a report or an audit record: name, content hash of its model file, headline metrics."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.model.card import ModelCard
from core.store.cases import sha256_file

HEADLINE = (("test", "accuracy", "Test accuracy"), ("test", "macro_f1", "Test macro-F1"),
            ("test", "macro_auc", "Test macro AUC"), ("test_leakage_free", "accuracy", "Leakage-free accuracy"),
            ("test_leakage_free", "macro_f1", "Leakage-free macro-F1"))


@dataclass(frozen=True)
class ModelInfo:
    """A model as a report names it."""

    name: str
    sha256: str
    backbone: str
    image_size: int
    class_names: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Short version: the first 12 hex digits of the model file's SHA-256."""
        return self.sha256[:12]


def model_info(model_dir: str | Path, card: ModelCard) -> ModelInfo:
    """Name, SHA-256 of the model file and the card's headline test metrics."""
    evaluation: dict[str, Any] = card.evaluation or {}
    metrics = {label: float(evaluation[split][key]) for split, key, label in HEADLINE
               if key in evaluation.get(split, {})}
    return ModelInfo(card.name, sha256_file(Path(model_dir) / card.model_file), card.backbone, card.image_size,
                     tuple(card.class_names), metrics)
