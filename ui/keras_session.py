"""Keep TensorFlow's compiled kernels across Streamlit reruns.

After every script run Streamlit calls `keras.backend.clear_session()` (a guard from the TF1 graph-session
era). With Keras 3 on TensorFlow that also clears the eager kernel cache, so the first model call of the
next run re-optimises and re-instantiates the whole prediction graph: 0.43 s of a 0.45 s classification
(measured; the call itself takes 0.02 s). Our models are loaded once through `st.cache_resource` and no
page builds Keras models per run, so there is no session state to clear. This module swaps Streamlit's
clean-up for one that skips Keras and keeps its other duty (closing matplotlib figures).
"""
from __future__ import annotations

import logging
import sys
from typing import Any

_LOG = logging.getLogger(__name__)


def _clean_without_keras() -> None:
    """Streamlit's per-run clean-up minus `keras.backend.clear_session()`."""
    pyplot: Any = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def keep_keras_kernels() -> bool:
    """Stop Streamlit clearing the Keras session after each run; False if this Streamlit has no such step."""
    from streamlit.runtime.scriptrunner import script_runner

    if not callable(getattr(script_runner, "_clean_problem_modules", None)):
        _LOG.warning("Streamlit has no _clean_problem_modules; the first model call of each run may be slow")
        return False
    script_runner._clean_problem_modules = _clean_without_keras
    return True
