"""The training loop's named steps and its typed progress: state.json keeps its format (a run resumes across the
change), and one run checks its data for leakage once (the split, the calibration and the evaluation share it)."""
from __future__ import annotations

import json
import os

import pytest

from core.errors import TrainingConfigError
from core.training import run_files as rf
from core.training.loop import TrainConfig, train
from core.training.state import RunState, resumed_state

# A checkpoint's state.json as the loop wrote it before RunState existed (keys and order as on disk).
SAVED = {"phase_index": 0, "epoch": 10, "global_epoch": 10, "best_val_accuracy": 0.7924242615699768,
         "best_epoch": 9, "elapsed_before": 8150.710724830627, "started": 1796150074.5747344, "cancelled": False,
         "train_images": 6910, "validation_images": 660, "epoch_seconds": 435.7473032474518,
         "elapsed": 448.0392391681671}


def test_state_json_round_trips_to_the_same_text():
    assert json.dumps(RunState.from_json(SAVED).to_json()) == json.dumps(SAVED)


def test_a_fresh_state_writes_only_the_keys_it_has():
    assert RunState().to_json() == {"phase_index": 0, "epoch": 0, "global_epoch": 0, "best_val_accuracy": -1.0,
                                    "best_epoch": 0, "elapsed_before": 0.0, "started": 0.0, "cancelled": False,
                                    "train_images": 0, "validation_images": 0}


def test_an_unknown_key_is_refused_with_a_message():
    with pytest.raises(TrainingConfigError, match="does not know \\(schema_version\\)"):
        RunState.from_json({**SAVED, "schema_version": 2})


def test_resume_adds_the_earlier_sessions_time(tmp_path):
    state_file = tmp_path / rf.CHECKPOINT_STATE
    state_file.write_text("{}")
    assert resumed_state(SAVED, state_file).elapsed_before == pytest.approx(8150.710724830627 + 448.0392391681671)
    old = {k: v for k, v in SAVED.items() if k not in ("elapsed", "elapsed_before")}  # the oldest format
    os.utime(state_file, (SAVED["started"] + 100.0, SAVED["started"] + 100.0))
    assert resumed_state(old, state_file).elapsed_before == pytest.approx(100.0, abs=1e-3)


def test_one_run_checks_the_data_for_leakage_once(tiny_dataset, tmp_path, monkeypatch):
    """Every scan is thumbnailed once in a run: the grouped split's check is passed to the calibration and the
    evaluation (each used to check the data again)."""
    from core.data import discovery, leakage

    thumbnailed: list[str] = []
    real = leakage.thumbnails

    def counting(path):
        thumbnailed.append(str(path))
        return real(path)

    monkeypatch.setattr(leakage, "thumbnails", counting)
    config = TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none", image_size=32, batch_size=8,
                         epochs_scratch=1, warmup_epochs=0, augment="spec")  # no limit: calibration is tried too
    out = train(config, tmp_path / "run")
    index = discovery.discover(tiny_dataset)
    scans = len(index.splits["Training"]) + len(index.splits["Testing"])
    assert sorted(thumbnailed) == sorted({str(s.path) for s in index.splits["Training"] + index.splits["Testing"]})
    assert len(thumbnailed) == scans
    assert rf.read_status(tmp_path / "run")["state"] == "finished" and (out / "model_card.json").is_file()
    assert "leakage check:" in (tmp_path / "run" / rf.LOG_FILE).read_text()
