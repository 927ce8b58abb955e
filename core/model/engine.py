"""Forward-only inference runtimes behind `core.model.inference`: TensorFlow's traced call, or OpenVINO (f32, or
with a bf16 inference-precision hint where the CPU has BF16 support, detected at run time).

TensorFlow stays the reference and the only path for gradients (SHAP) and training. An OpenVINO runner is
attached to a loaded classifier by `core.model.engine_check.select_engine` only after it agreed with TensorFlow on a
fixed probe batch; `core.model.inference` asks `runner(model)` and falls back to TensorFlow when there is none.

The OpenVINO model is the inference probe (probabilities, penultimate features, pooled stage outputs) flattened into
one (N, K) output, so one compiled model serves `predict_proba` and `predict_with_features` and no output order
has to be guessed. Its conversion (minutes on a busy CPU) is cached as OpenVINO IR in a folder keyed by the model
file's SHA-256 and the OpenVINO version; compiled blobs go to the same cache (OpenVINO's own CACHE_DIR).
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelNotFoundError

LOG = logging.getLogger(__name__)

TENSORFLOW = "tensorflow"
OPENVINO_F32 = "openvino-f32"
OPENVINO_BF16 = "openvino-bf16"
CHOICES = ("auto", "tensorflow", "openvino", OPENVINO_F32, OPENVINO_BF16)
_PRECISION = {OPENVINO_F32: "f32", OPENVINO_BF16: "bf16"}


@dataclass(frozen=True)
class OpenVinoRunner:
    """A compiled OpenVINO probe: `run(batch)` -> the probe's outputs (float32 arrays, in the probe's order)."""

    name: str                      # OPENVINO_F32 or OPENVINO_BF16
    compiled: Any
    widths: tuple[int, ...]
    lock: Any                      # one infer request: calls from several threads take turns
    convert_seconds: float         # 0.0 when the IR came from the cache

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            flat = np.array(self.compiled(np.ascontiguousarray(batch, np.float32))[0], np.float32, copy=True)
        return np.split(flat, np.cumsum(self.widths)[:-1], axis=1)


_RUNNERS: "weakref.WeakKeyDictionary[Any, OpenVinoRunner]" = weakref.WeakKeyDictionary()


def attach(model: Any, runner: OpenVinoRunner | None) -> None:
    """Make `runner` the forward path of `model` (None: back to TensorFlow)."""
    if runner is None:
        _RUNNERS.pop(model, None)
    else:
        _RUNNERS[model] = runner


def runner(model: Any) -> OpenVinoRunner | None:
    """The OpenVINO runner attached to this model, if any."""
    return _RUNNERS.get(model)


def engine_name(model: Any) -> str:
    """What computes this model's forward pass: "tensorflow", "openvino-f32" or "openvino-bf16" (for records)."""
    attached = _RUNNERS.get(model)
    return attached.name if attached else TENSORFLOW


def bf16_supported() -> bool:
    """Whether OpenVINO's CPU plugin reports native BF16 support on this machine (AVX512-BF16 / AMX)."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def candidates(choice: str) -> list[str]:
    """The OpenVINO precisions to try for a setting value (see `CHOICES`; "openvino" is "auto").

    `auto` tries f32 only: bf16 kept every argmax on all 1,311 Testing scans but moved probabilities by up to 7.0
    points (calibrated 6.1; docs/engine.md), over the 0.5-point rule for what a clinician is shown. bf16 runs only
    when asked for by name (bulk explanation work), where the CPU supports it, and after the load check (f32 next)."""
    if choice not in CHOICES:
        raise ModelNotFoundError(f"BRAINSCAN_ENGINE={choice!r} is not an engine; choose one of {', '.join(CHOICES)}")
    if choice == TENSORFLOW:
        return []
    if choice == OPENVINO_BF16 and bf16_supported():
        return [OPENVINO_BF16, OPENVINO_F32]
    return [OPENVINO_F32]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (read in 1 MB chunks): the model's identity for the conversion cache."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _flat(probe: Any) -> Any:
    """The probe as one Keras model with its outputs concatenated along the last axis."""
    import keras

    return keras.Model(probe.input, keras.ops.concatenate(list(probe.outputs), axis=1))


def converted(probe: Any, key: str, cache_dir: Path) -> tuple[Any, float]:
    """The probe as an OpenVINO model, read from `cache_dir/key` or converted and saved there; and the seconds
    the conversion took (0.0 from the cache)."""
    import openvino

    folder = Path(cache_dir) / f"{key}-ov{openvino.__version__.split('-')[0]}"
    xml = folder / "probe.xml"
    core = openvino.Core()
    if xml.is_file():
        return core.read_model(xml), 0.0
    start = time.perf_counter()
    model = openvino.convert_model(_flat(probe), input=[(-1, *probe.input_shape[1:])])
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"probe.{os.getpid()}.{threading.get_ident()}.tmp.xml"  # racing writers never mix
    openvino.save_model(model, partial, compress_to_fp16=False)
    partial.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    partial.replace(xml)  # the .xml last: its presence means the pair is complete
    LOG.info("converted the model to OpenVINO in %.1f s (cached in %s)", seconds, folder)
    return model, seconds


def compile_runner(probe: Any, key: str, cache_dir: Path, name: str) -> OpenVinoRunner:
    """A runner for `probe` at the precision of `name` (OPENVINO_F32 or OPENVINO_BF16)."""
    import openvino

    model, seconds = converted(probe, key, cache_dir)
    core = openvino.Core()
    core.set_property({"CACHE_DIR": str(Path(cache_dir) / "compiled")})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": _PRECISION[name],
                                                 "PERFORMANCE_HINT": "LATENCY"})
    widths = tuple(int(output.shape[-1]) for output in probe.outputs)
    return OpenVinoRunner(name, compiled, widths, threading.Lock(), seconds)
