"""One `ast.parse` at a time in the app's process: a guard against a CPython 3.11 race.

On Python 3.11, two threads building Python AST objects at once can fail with "SystemError: AST constructor
recursion depth mismatch" (CPython gh-106905: the recursion counter was shared, and the garbage collector can
hand the GIL over mid-parse; fixed by CPython in December 2023; this project's machines run 3.11.7). In the app
this happened for real: Streamlit compiles a page script with `ast.parse` the first time it is opened, while
the explainers warm up in a background thread where TensorFlow's autograph and scikit-image's lazy loader parse
source too, and the page died with Streamlit's "This app has encountered an error" (seen in
tests/test_browser_e2e.py, server log kept in test-artifacts/logs/). Serialising `ast.parse` removes the overlap;
parsing is a tiny share of either job, so the lock costs nothing measurable.
"""
from __future__ import annotations

import ast
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

LOCK = threading.RLock()           # re-entrant: a parse that triggers another (an import hook, a finalizer) may nest
FIXED_FROM = (3, 13)               # the guard goes in below this: harmless on a patch release that has the fix


def _guarded(parse: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(parse)
    def parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with LOCK:
            return parse(*args, **kwargs)

    parse_one_at_a_time.__brainscan_guarded__ = True  # type: ignore[attr-defined]
    return parse_one_at_a_time


def serialise_ast_parsing() -> bool:
    """Make `ast.parse` take `LOCK` for the process (idempotent). True when the guard is in place."""
    if sys.version_info >= FIXED_FROM:
        return False
    if not getattr(ast.parse, "__brainscan_guarded__", False):
        ast.parse = _guarded(ast.parse)
    return True
