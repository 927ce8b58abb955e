"""What a training run carries from step to step: its progress (RunState: what a checkpoint's state.json records
and a resume continues from) and its data (RunData: read once per run)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from core.data.discovery import DatasetIndex, LoadedImages, Sample
from core.data.leakage import LeakageReport, check_leakage
from core.errors import TrainingConfigError

# state.json has no version key: runs written before this type existed must resume, and the file this writes
# must stay readable by the code that wrote them. Format 1 is the keys of RunState; a new key needs a default.
STATE_FORMAT = 1


@dataclass
class RunState:
    """A run's progress, shared by the loop and its monitor; one instance per run, saved with every checkpoint.

    `epoch` counts the epochs done in phase `phase_index`, `global_epoch` those done in the whole run;
    `elapsed_before` is the training time of earlier sessions of a resumed run, `started` this session's start,
    `elapsed` this session's training time at the last save; `epoch_seconds` is the last epoch's length (None
    before one ends: the ETA is then estimated from batches).
    """

    phase_index: int = 0
    epoch: int = 0
    global_epoch: int = 0
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    elapsed_before: float = 0.0
    started: float = 0.0
    cancelled: bool = False
    train_images: int = 0
    validation_images: int = 0
    epoch_seconds: float | None = None
    elapsed: float | None = None

    def to_json(self) -> dict[str, Any]:
        """state.json's content: every field in declaration order, the unset optional ones left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        """Read a state.json; a key this code does not know means a newer format, which it cannot resume."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingConfigError(f"the checkpoint's state has keys this version does not know ({', '.join(unknown)}): "
                                      "resume it with the version that wrote it.")
        return cls(**data)

    def total_seconds(self) -> float:
        """Training time of the whole run so far, earlier sessions included."""
        return time.time() - self.started + self.elapsed_before


def resumed_state(saved: dict[str, Any], state_file: Path) -> RunState:
    """The state a resume continues from: the saved one, with the earlier sessions' training time added up (a
    state saved before `elapsed` was recorded counts from its start to the file's last write)."""
    state = RunState.from_json(saved)
    elapsed = state.elapsed if state.elapsed is not None else state_file.stat().st_mtime - state.started
    state.elapsed_before += elapsed
    return state


@dataclass
class RunData:
    """The data of one run, read once: the index, its leakage report (None until needed when the protocol does not
    group by source), the splits (collections added), the number of the no-tumour class (-1: none) and the
    decoded training and validation scans."""

    index: DatasetIndex
    leakage: LeakageReport | None
    splits: dict[str, list[Sample]]
    no_tumour: int
    loaded: dict[str, LoadedImages]

    def leakage_report(self) -> LeakageReport:
        """The leakage report, computed on first use (the evaluation needs it whatever the protocol)."""
        if self.leakage is None:
            self.leakage = check_leakage(self.index)
        return self.leakage
