"""Start `streamlit run app.py` on a free localhost port and Chromium's settings: shared by the browser
test and `benchmarks/app_startup.py`, so both drive the app the same way."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("BRAINSCAN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    """Return once Streamlit's health endpoint answers; RuntimeError if the server exits or times out."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("streamlit exited during start-up")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"streamlit not healthy after {seconds} s")


@contextlib.contextmanager
def streamlit_app(env: dict[str, str], log: IO[bytes] | IO[str], wait: bool = True,
                  seconds: float = 120) -> Iterator[tuple[str, subprocess.Popen]]:
    """(url, process) of `streamlit run app.py` bound to 127.0.0.1, output to `log`; stopped on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_healthy(url, process, seconds)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


BROWSER_MARKS = [pytest.mark.browser,
                 pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason=f"Chromium not found at {CHROMIUM}: run .ci/browser-deps.sh "
                                           "(apt-get install chromium)")]


@pytest.fixture
def server(evaluated_model, tmp_path, request):
    """`streamlit run app.py` on a free localhost port, pointed at the tiny model, an empty runs folder and a fresh
    audit store (the test module imports `evaluated_model` from tests/test_app_pages.py). The server's log is kept
    in test-artifacts/logs/<test>.log, so a failure seen once can be read afterwards."""
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    log = tmp_path / "streamlit.log"
    env = {"BRAINSCAN_MODEL": str(evaluated_model), "BRAINSCAN_RUNS": str(tmp_path / "runs"),
           "BRAINSCAN_STATE_DIR": str(tmp_path / "state"), "BRAINSCAN_DB_URL": ""}
    try:
        with open(log, "wb") as out, streamlit_app(env, out, wait=False) as (url, process):
            try:
                wait_healthy(url, process, 60)
            except RuntimeError as exc:
                pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")
            yield url
    finally:
        kept = REPO / "test-artifacts" / "logs"
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, kept / f"{request.node.name}.log")
