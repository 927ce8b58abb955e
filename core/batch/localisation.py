"""`xai-eval --localisation` on Ray: the per-scan work of `core.xai.localisation.score_scans` fanned out.

Each scan is scored by `score_scans` itself on a one-scan list with the seed it has in the sequential run
(`seed + index`), so every record is the one the sequential loop makes; records come back in any order and
are returned in scan order. The checkpoint (JSON lines) works as in the sequential run: scans already there
are not sent again, and each record is appended as it arrives. A deadline stops taking new results.
"""
from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.batch.cluster import fan_out

Progress = Callable[[int, int], None]


class LocalisationScorer:
    """A Ray Data actor: the model loaded once, one `score_scans` call per scan."""

    def __init__(self, model_dir: str, methods: list[str], options: bytes, road: bool, cpus: int) -> None:
        from core.batch.worker import limit_threads
        from core.model.factory import load_model
        from core.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        limit_threads(cpus)
        self.model, _ = load_model(model_dir)
        self.methods, self.options, self.road = methods, pickle.loads(options), road

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        from core.xai.localisation import score_scans

        out: dict[str, list[Any]] = {"index": [], "record": []}
        for row in batch.to_pylist():
            scan = pickle.loads(row["scan"])
            record = score_scans(self.model, [scan], self.methods, self.options, row["seed"], self.road)[0]
            out["index"].append(row["index"])
            out["record"].append(json.dumps(record))
        return out


def ray_scorer(model_dir: str, address: str | None = None, workers: int | None = None) -> Callable[..., list]:
    """A drop-in for `score_scans` (same arguments) that runs on Ray with the model loaded once per worker."""

    def score(model: Any, scans: list, methods: list[str], method_options: dict[str, dict[str, Any]],
              seed: int = 0, road: bool = True, progress: Progress | None = None,
              checkpoint: Path | None = None, deadline: float | None = None) -> list[dict[str, Any]]:
        from core.xai.localisation import read_checkpoint

        done = read_checkpoint(checkpoint)
        records: dict[int, dict[str, Any]] = {i: done[s.row.file] for i, s in enumerate(scans) if s.row.file in done}
        pending = [{"index": i, "seed": seed + i, "scan": pickle.dumps(s)} for i, s in enumerate(scans)
                   if i not in records]
        if not pending:
            return [records[i] for i in sorted(records)]
        kwargs = {"model_dir": model_dir, "methods": list(methods), "options": pickle.dumps(method_options),
                  "road": road}
        results = fan_out(pending, LocalisationScorer, kwargs, workers, address)
        try:
            for index, text in results:
                records[index] = json.loads(text)
                if checkpoint is not None:
                    with checkpoint.open("a") as handle:
                        handle.write(text + "\n")
                if progress:
                    progress(len(records), len(scans))
                if deadline is not None and time.perf_counter() > deadline:
                    break
        finally:
            results.close()  # shuts down the Ray this call started, also when the deadline ended the loop
        return [records[i] for i in sorted(records)]

    return score
