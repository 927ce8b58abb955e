"""End to end in a real browser: `streamlit run app.py` driven by Debian's Chromium through Playwright.

Upload a scan, read the predicted class, open the Explain page and see the three overlays, open the
metrics page. Screenshots go to test-artifacts/screenshots/ (printed). Skipped, with the reason,
when Chromium (/usr/bin/chromium, or BRAINSCAN_CHROMIUM) or Playwright is missing; `.ci/browser-deps.sh`
installs Chromium.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.model_card import class_label
from core.model_registry import sample_scans
from core.predict import classify
from core.presentation import format_probability
from tests.test_app_pages import evaluated_model  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("BRAINSCAN_CHROMIUM", "/usr/bin/chromium"))
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason=f"Chromium not found at {CHROMIUM}: run .ci/browser-deps.sh "
                                        "(apt-get install chromium)")]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not become healthy in {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(evaluated_model, tmp_path):
    """`streamlit run app.py` on a free localhost port, pointed at the tiny model and an empty runs folder."""
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "BRAINSCAN_MODEL": str(evaluated_model), "BRAINSCAN_RUNS": str(tmp_path / "runs"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_upload_classify_explain_in_chromium(server, tiny_model):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SCREENSHOTS}")
    sample = next(p for p in sample_scans() if p.name.startswith("Te-gl"))
    expected = classify(*tiny_model, sample)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2200})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(server)
            expect(page.get_by_text("Classify a brain MRI slice")).to_be_visible()
            expect(page.get_by_text("not a medical device").first).to_be_visible()
            page.locator("input[type=file]").set_input_files(str(sample))
            expect(page.get_by_text("Predicted class")).to_be_visible()
            expect(page.get_by_text(f"{format_probability(expected.confidence)} probability")).to_be_visible()
            prediction = page.locator("span", has_text=class_label(expected.predicted)).first
            expect(prediction).to_be_visible()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(SCREENSHOTS / "1-classify.png"), full_page=True)

            page.get_by_role("link", name="Explain").first.click()
            expect(page.get_by_text("Explanations ready")).to_be_visible()
            for label in ("Score-CAM", "SHAP", "LIME"):
                expect(page.get_by_text(f"{label} ·").first).to_be_visible()
            images = page.locator("[data-testid=stImage] img")
            assert images.count() >= 3
            slider = page.frame_locator("iframe").first.locator("input[type=range]")
            slider.fill("20")
            assert page.frame_locator("iframe").first.locator(".bar").get_attribute("style") == "left: 20%;"
            page.wait_for_timeout(1500)
            page.screenshot(path=str(SCREENSHOTS / "2-explain.png"), full_page=True)

            page.get_by_role("link", name="Model metrics").first.click()
            expect(page.get_by_text("Confusion matrices")).to_be_visible()
            expect(page.locator("[data-testid=stPlotlyChart]").first).to_be_visible()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(SCREENSHOTS / "3-metrics.png"), full_page=True)
            assert page.get_by_text("Traceback").count() == 0
        finally:
            browser.close()
