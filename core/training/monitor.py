"""The Keras callback that makes a run observable and resumable: status.json during each epoch, a history row and
a checkpoint at each epoch end, and a stop at the first batch end after a cancel. Imports Keras: the loop imports
it only when training starts."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.training import run_files as rf
from core.training.cancel import Cancel, Cancelled
from core.training.config import Phase
from core.training.state import RunState

log = logging.getLogger("brainscan.train")

STATUS_INTERVAL = 2.0  # seconds between status writes during an epoch (the app polls the file)


class RunMonitor(keras.callbacks.Callback):
    """Writes status/history/checkpoints each epoch and progress during it; honours cancel."""

    def __init__(self, run_dir: Path, phase_index: int, phases: list[Phase], state: RunState, cancel: Cancel,
                 steps_per_epoch: int, collection_val: tuple[Any, int] | None = None):
        super().__init__()
        self.run_dir, self.phase_index, self.phases = run_dir, phase_index, phases
        self.state, self.cancel, self.steps = state, cancel, steps_per_epoch
        self.collection_val = collection_val
        self.last_write = 0.0
        self.epoch_start = self.train_end = time.time()

    def _remaining_epochs(self, epoch_in_phase: int) -> int:
        phase = self.phases[self.phase_index]
        later = sum(p.epochs for p in self.phases[self.phase_index + 1:])
        return phase.epochs - epoch_in_phase + later

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch_start = time.time()

    def _stop_if_cancelled(self, batch: int, part: str) -> None:
        if not self.cancel.requested():
            return
        self.model.stop_training = True
        self.state.cancelled = True
        rf.update_status(self.run_dir, state="cancelling")
        done = self.state.global_epoch
        log.info("cancel requested: stopped at %s batch %d of epoch %d; the epoch is discarded (not validated); "
                 "%s", part, batch + 1, done + 1,
                 f"the checkpoint of epoch {done} is kept" if done else "no epoch was completed")
        raise Cancelled

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._stop_if_cancelled(batch, "training")
        now = self.train_end = time.time()
        if now - self.last_write > STATUS_INTERVAL:
            self.last_write = now
            seconds_per_batch = (now - self.epoch_start) / (batch + 1)
            rf.update_status(self.run_dir, state="running", batch=batch + 1, batches=self.steps,
                             batch_metrics={k: float(v) for k, v in (logs or {}).items()},
                             epoch_progress=(batch + 1) / self.steps)
            if self.state.epoch_seconds is None:
                remaining = self._remaining_epochs(self.state.epoch) * self.steps - (batch + 1)
                rf.update_status(self.run_dir, eta_seconds=remaining * seconds_per_batch)

    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        self._stop_if_cancelled(batch, "validation")

    def _collection_recall(self, logs: dict[str, float]) -> dict[str, float]:
        """Tumour recall on the tumour collection's validation groups, and the accuracy on the rest of
        validation (val_accuracy counts a collection scan right when it is called a tumour)."""
        if self.collection_val is None or "val_accuracy" not in logs:
            return {}
        dataset, normal = self.collection_val
        probabilities = self.model.predict(dataset, verbose=0)
        recall = float(np.mean(np.argmax(probabilities, axis=1) != normal))
        n, total = len(probabilities), self.state.validation_images
        rest = (logs["val_accuracy"] * total - recall * n) / max(total - n, 1)
        return {"val_collection_tumour_recall": recall, "val_accuracy_without_collection": rest}

    def _history_row(self, epoch: int, seconds: float, logs: dict[str, float]) -> dict[str, Any]:
        """history.json's row for the epoch just ended (after the state counted it)."""
        images_per_second = self.state.train_images / max(self.train_end - self.epoch_start, 1e-6)
        return {"phase": self.phases[self.phase_index].name, "phase_index": self.phase_index, "epoch": epoch + 1,
                "global_epoch": self.state.global_epoch, "seconds": round(seconds, 1),
                "images_per_second": round(images_per_second, 1),
                "learning_rate": float(np.asarray(self.model.optimizer.learning_rate)), **logs,
                **self._collection_recall(logs)}

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        seconds = time.time() - self.epoch_start
        state = self.state
        state.epoch, state.global_epoch, state.epoch_seconds = epoch + 1, state.global_epoch + 1, seconds
        row = self._history_row(epoch, seconds, logs)
        improved = logs.get("val_accuracy", float("nan")) > state.best_val_accuracy
        if improved:
            state.best_val_accuracy, state.best_epoch = logs["val_accuracy"], state.global_epoch
        state.elapsed = time.time() - state.started
        # History first: a resume truncates it to the checkpoint's epoch, so a kill in between loses no row.
        history = rf.read_json(self.run_dir / rf.HISTORY_FILE, [])
        rf.write_json(self.run_dir / rf.HISTORY_FILE, [*history, row], durable=True)
        rf.save_checkpoint(self.run_dir / rf.CHECKPOINT_SUBDIR, state.to_json(), self.model.save,
                           self.model.save_weights if improved else None)
        self._report(epoch, seconds, row, improved)

    def _report(self, epoch: int, seconds: float, row: dict[str, Any], improved: bool) -> None:
        """The epoch's status.json and log line."""
        phase, state = self.phases[self.phase_index], self.state
        eta = seconds * self._remaining_epochs(epoch + 1)
        rf.update_status(self.run_dir, state="running", phase=phase.name, phase_index=self.phase_index,
                         epoch=epoch + 1, phase_epochs=phase.epochs, global_epoch=state.global_epoch,
                         epochs_total=sum(p.epochs for p in self.phases), metrics=row,
                         best_val_accuracy=state.best_val_accuracy, best_epoch=state.best_epoch,
                         eta_seconds=eta, elapsed_seconds=state.total_seconds())
        extra = "".join(f"  {k} {row[k]:.4f}" for k in ("val_collection_tumour_recall",
                                                         "val_accuracy_without_collection") if k in row)
        log.info("phase %s epoch %d/%d  loss %.4f acc %.4f  val_loss %.4f val_acc %.4f%s  lr %.2e  %.0fs "
                 "(%.1f img/s)%s  ETA %.0f min", phase.name, epoch + 1, phase.epochs, row.get("loss", np.nan),
                 row.get("accuracy", np.nan), row.get("val_loss", np.nan), row.get("val_accuracy", np.nan), extra,
                 row["learning_rate"], seconds, row["images_per_second"], "  *best*" if improved else "", eta / 60)
