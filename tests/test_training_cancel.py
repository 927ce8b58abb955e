"""Cancelling a run stops it at the next batch: the rest of the epoch and its validation are skipped, the best
checkpoint is exported as "cancelled", and a resume trains every epoch exactly once."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.model.factory import load_model
from core.training import loop
from core.training import run_files as rf
from core.training.loop import TrainConfig, train

CANCEL_EPOCH, CANCEL_BATCH = 1, 2   # zero-based: the third batch of the second epoch


def _config(data: Path, epochs: int) -> TrainConfig:
    return TrainConfig(data=str(data), backbone="TinyCNN", weights="none", image_size=32, batch_size=4,
                       epochs_scratch=epochs, lr_scratch=5e-3, warmup_epochs=0, patience=100, augment="spec",
                       limit_per_class=12)  # a quick run: no calibration at the end


@pytest.fixture
def recorded(monkeypatch):
    """The run's monitor, recording what Keras calls, and writing the CANCEL file (as the app's Cancel button
    does) at the batch `calls["at"]` (epoch, batch), zero-based."""
    calls: dict = {"train": [], "test": [], "epoch_end": [], "requested_at": None,
                   "at": (CANCEL_EPOCH, CANCEL_BATCH)}
    from core.training import monitor

    class Recording(monitor.RunMonitor):
        def on_epoch_begin(self, epoch, logs=None):
            self.current = epoch
            super().on_epoch_begin(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            calls["train"].append((self.current, batch))
            calls["steps"] = self.steps
            if (self.current, batch) == calls["at"] and calls["requested_at"] is None:
                calls["requested_at"] = time.perf_counter()
                rf.request_cancel(self.run_dir)
            super().on_train_batch_end(batch, logs)

        def on_test_batch_end(self, batch, logs=None):
            calls["test"].append((self.current, batch))
            super().on_test_batch_end(batch, logs)

        def on_epoch_end(self, epoch, logs=None):
            calls["epoch_end"].append(epoch)
            super().on_epoch_end(epoch, logs)

    monkeypatch.setattr(monitor, "RunMonitor", Recording)
    return calls


def test_cancel_mid_epoch_stops_at_once_without_validation_and_resumes(tiny_dataset, tmp_path, recorded):
    import keras

    run_dir, epochs = tmp_path / "run", 3
    out = train(_config(tiny_dataset, epochs), run_dir)
    cancel_to_exit = time.perf_counter() - recorded["requested_at"]
    print(f"cancel to return of train(): {cancel_to_exit:.2f} s (export of the best checkpoint included)")

    steps = recorded["steps"]
    assert steps > CANCEL_BATCH + 2, "the cancel falls in the middle of the epoch"
    second = [b for e, b in recorded["train"] if e == CANCEL_EPOCH]
    assert second == list(range(CANCEL_BATCH + 1)), "no batch after the cancel is trained"
    assert {e for e, _ in recorded["test"]} == {0}, "only the completed epoch was validated"
    assert recorded["epoch_end"] == [0], "the cancelled epoch never ends"
    assert cancel_to_exit < 60

    status = rf.read_status(run_dir)
    assert status["state"] == "cancelled" and status["global_epoch"] == 1 and status["model_dir"] == str(out)
    assert [row["global_epoch"] for row in rf.read_json(run_dir / rf.HISTORY_FILE)] == [1]
    card = load_model(out)[1]
    assert card.training["cancelled"] is True and card.training["best_epoch"] == 1 and card.evaluation == {}
    checkpoint = rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR)
    assert rf.read_json(checkpoint / rf.CHECKPOINT_STATE)["global_epoch"] == 1
    assert int(keras.saving.load_model(checkpoint / rf.CHECKPOINT_MODEL).optimizer.iterations) == steps
    log = (run_dir / rf.LOG_FILE).read_text()
    assert "stopped at training batch 3 of epoch 2" in log and "epoch 2/3" not in log

    out = train(TrainConfig(data=""), run_dir, resume=True)
    assert rf.read_status(run_dir)["state"] == "finished"
    assert [row["global_epoch"] for row in rf.read_json(run_dir / rf.HISTORY_FILE)] == [1, 2, 3]
    checkpoint = rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR)
    assert int(keras.saving.load_model(checkpoint / rf.CHECKPOINT_MODEL).optimizer.iterations) == steps * epochs, \
        "the discarded part of epoch 2 is trained again once, nothing twice"
    assert load_model(out)[1].training["cancelled"] is False


def test_cancel_in_the_first_epoch_exports_nothing(tiny_dataset, tmp_path, recorded):
    recorded["at"] = (0, CANCEL_BATCH)
    run_dir = tmp_path / "run"
    out = train(_config(tiny_dataset, 2), run_dir)
    assert [b for e, b in recorded["train"]] == list(range(CANCEL_BATCH + 1)) and recorded["test"] == []
    status = rf.read_status(run_dir)
    assert status["state"] == "cancelled" and status["model_dir"] is None and not out.exists()
    assert rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR) is None


def test_cancel_while_the_data_loads_stops_before_training(tiny_dataset, tmp_path, monkeypatch, recorded):
    run_dir = tmp_path / "run"
    real_load = loop.load_samples

    def load_then_cancel(*args, **kwargs):
        rf.request_cancel(run_dir)  # the Cancel button pressed while the scans are read
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loop, "load_samples", load_then_cancel)
    out = train(_config(tiny_dataset, 2), run_dir)
    assert recorded["train"] == [] and not out.exists()
    assert rf.read_status(run_dir)["state"] == "cancelled"
    assert "cancelled before an epoch was completed" in (run_dir / rf.LOG_FILE).read_text()
