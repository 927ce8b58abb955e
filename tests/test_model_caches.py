"""Per-model caches must not keep a model alive, and LIME must not touch the process's stderr."""
from __future__ import annotations

import gc
import sys
import threading
import weakref

import numpy as np

from core.model.factory import load_model
from core.model.inference import predict_proba
from core.xai.explainers import explain, lime_method, scorecam, shap_method


def test_an_evicted_model_is_freed_after_predicting_and_explaining(tiny_model_dir, rng):
    model, card = load_model(tiny_model_dir)
    image = rng.integers(0, 256, (card.image_size, card.image_size, 3)).astype(np.float32)
    predict_proba(model, image)
    explain(model, image, "scorecam", 0)
    explain(model, image, "shap", 0, explainer="gradient", nsamples=8, batch_size=8)
    explain(model, image, "lime", 0, num_samples=10)
    assert model in scorecam._FEATURE_MODELS and model in shap_method._GRADIENT
    gc.collect()  # other tests' models that are already unreachable go now, not in the count below
    cached = len(scorecam._FEATURE_MODELS), len(shap_method._GRADIENT)  # other tests' live models may be cached too
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
    assert (len(scorecam._FEATURE_MODELS), len(shap_method._GRADIENT)) == (cached[0] - 1, cached[1] - 1)


def test_overlapping_lime_runs_leave_sys_stderr_alone(tiny_model, rng):
    """Two LIME explanations in threads at once (the app's warm-up and a session) keep the real stderr."""
    model, card = tiny_model
    image = rng.integers(0, 256, (card.image_size, card.image_size, 3)).astype(np.float32)
    before = sys.stderr
    seen, errors = [], []
    start = threading.Barrier(2)

    class Spy:
        """A stderr that records who writes to it (lime's tqdm bar must not)."""

        def write(self, text):
            seen.append(text)
            return before.write(text)

        def flush(self):
            before.flush()

    def work():
        try:
            start.wait()
            explain(model, image, "lime", 0, num_samples=40, batch_size=8)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    sys.stderr = spy = Spy()
    try:
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sys.stderr is spy, "LIME replaced the process-wide stderr"
    finally:
        sys.stderr = before
    assert not errors, errors
    assert not any("%|" in text or "it/s" in text for text in seen), "lime's progress bar was drawn"
    assert lime_method._no_progress_bar([1, 2]) == [1, 2]
