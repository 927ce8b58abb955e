"""`xai-eval` (perturbation metrics) on Ray: `core.xai.evaluation.score_image` fanned out, one scan per call.

Each worker loads the model once and, for the sanity check, makes the same seeded randomised copy as the
sequential run; each scan is scored with its place in the sample (`index`), which seeds its reference maps and
metrics, so the scores are those of the in-process loop whatever the number of workers. Results arrive in any
order and are returned in sample order.
"""
from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from core.batch.cluster import fan_out
from core.xai.evaluation import EvalImage, ImageScores

Progress = Callable[[int, int], None]


class EvalScorer:
    """A Ray Data actor: the model (and, when asked, its randomised copy) loaded once; one scan per call."""

    def __init__(self, model_dir: str, options: bytes, seed: int, sanity_n: int, cpus: int) -> None:
        from core.batch.worker import limit_threads
        from core.model.factory import load_model
        from core.quiet import import_tensorflow_quietly
        from core.xai.metrics.sanity import randomised_copy

        import_tensorflow_quietly()
        limit_threads(cpus)
        self.model, self.card = load_model(model_dir)
        self.method_opts, self.metric_opts = pickle.loads(options)
        self.seed, self.sanity_n = seed, sanity_n
        self.random_model = randomised_copy(self.model, seed) if sanity_n > 0 else None

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        from core.xai.evaluation import score_image

        out: dict[str, list[Any]] = {"index": [], "record": []}
        for row in batch.to_pylist():
            index, item = row["index"], pickle.loads(row["item"])
            random_model = self.random_model if index < self.sanity_n else None
            scores = score_image(self.model, random_model, self.card, item, index, self.method_opts,
                                 self.metric_opts, self.seed)
            out["index"].append(index)
            out["record"].append(json.dumps(asdict(scores)))
        return out


def ray_image_scorer(model_dir: str, address: str | None = None, workers: int | None = None
                     ) -> Callable[..., list[ImageScores]]:
    """A drop-in for `score_images` (same arguments) that runs on Ray with the model loaded once per worker."""

    def score(model: Any, card: Any, images: list[EvalImage], method_opts: dict[str, dict[str, Any]],
              metric_opts: dict[str, dict[str, Any]], seed: int, sanity_n: int,
              progress: Progress | None = None) -> list[ImageScores]:
        pending = [{"index": i, "item": pickle.dumps(item)} for i, item in enumerate(images)]
        if not pending:
            return []
        kwargs = {"model_dir": model_dir, "options": pickle.dumps((method_opts, metric_opts)), "seed": seed,
                  "sanity_n": sanity_n}
        scored: dict[int, ImageScores] = {}
        for index, text in fan_out(pending, EvalScorer, kwargs, workers, address):
            raw = json.loads(text)  # NaN (an undefined value) travels as JSON's NaN
            scored[index] = ImageScores(raw["rows"], raw["sanity"])
            if progress:
                progress(len(scored), len(images))
        return [scored[i] for i in sorted(scored)]

    return score
