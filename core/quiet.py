"""Import TensorFlow without its start-up chatter on stderr (CUDA probes, oneDNN notices).

Also hides Keras' harmless warning that a one-input model was called with a bare tensor instead of
a one-element list (saved models record the list form), which would otherwise repeat per batch.

TensorFlow's native logger writes these lines before TF_CPP_MIN_LOG_LEVEL is honoured, so the
command-line tools silence file descriptor 2 while TensorFlow loads and probes devices. Set
BRAINSCAN_VERBOSE=1 to see them.
"""
from __future__ import annotations

import os
import sys
import warnings

from core.settings import settings


def import_tensorflow_quietly() -> None:
    """Load keras (and tensorflow, on that backend) and probe GPUs with stderr muted (no-op when already loaded)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match", category=UserWarning)
    if "tensorflow" in sys.modules or settings().verbose:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras

        if keras.backend.backend() == "tensorflow":  # on the JAX backend TensorFlow need not be installed
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_opencv() -> None:
    """Hide OpenCV's own log lines (e.g. 'PNG input buffer is incomplete'): the decoder already turns every
    failure into a one-line error. BRAINSCAN_VERBOSE=1 keeps them."""
    if settings().verbose:
        return
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
