"""The PACS panel once end to end in Chromium: search a real Orthanc, classify the MR series, send the results
after the confirmation, and find the structured report in the study. The screenshot of the panel goes to
test-artifacts/screenshots/pacs-panel.png (docs/screenshots/pacs-panel.png is a copy of one)."""
from __future__ import annotations

import pytest

from core.pacs.connection import PacsConnection
from core.pacs.query import list_series
from tests.conftest import REAL_DATA
from tests.orthanc_server import MISSING, PATIENT_ID, kaggle_series, orthanc, seed_study
from tests.streamlit_server import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, REPO, streamlit_app, wait_healthy

pytestmark = [*BROWSER_MARKS, pytest.mark.data, pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
              pytest.mark.skipif(not (REAL_DATA / "Testing").is_dir(), reason=f"real data not found at {REAL_DATA}")]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
TIMEOUT_MS = 900_000  # generous: a starved CI machine loads the bundled model slowly


def test_pacs_panel_search_classify_send_in_chromium(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with orthanc(tmp_path / "orthanc") as pacs:
        seed_study(pacs, kaggle_series(REAL_DATA))
        env = {"BRAINSCAN_RUNS": str(tmp_path / "runs"), "BRAINSCAN_STATE_DIR": str(tmp_path / "state"),
               "BRAINSCAN_DB_URL": "", "BRAINSCAN_PACS_URL": pacs.url}
        with open(tmp_path / "streamlit.log", "wb") as log, streamlit_app(env, log, wait=False) as (url, process):
            wait_healthy(url, process, 600)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1366, "height": 1800})
                page.set_default_timeout(TIMEOUT_MS)
                try:
                    page.goto(url)  # a direct /pacs-worklist URL opens a "Page not found" dialog over the page
                    page.get_by_role("link", name="PACS").first.click()
                    expect(page.get_by_text("Work from the PACS")).to_be_visible()
                    expect(page.get_by_text(pacs.url.removeprefix("http://").split("/")[0]).first).to_be_visible()
                    page.get_by_label("Patient ID").fill(PATIENT_ID)
                    page.get_by_role("button", name="Search").click()
                    classify = page.get_by_role("button", name="Classify series 3 (MR, AX T1 POST GD)")
                    classify.click()
                    expect(page.get_by_text("Series tumour probability").first).to_be_visible()
                    page.get_by_role("button", name="Send results to PACS…").click()
                    expect(page.get_by_text("will be stored in the source study")).to_be_visible()
                    expect(page.get_by_text("Structured report (Comprehensive SR)").first).to_be_visible()
                    page.wait_for_timeout(800)
                    page.screenshot(path=str(SCREENSHOTS / "pacs-panel.png"), full_page=True)
                    page.get_by_role("button", name="Send", exact=True).click()
                    expect(page.get_by_text("Sent to the PACS").first).to_be_visible()
                    assert page.get_by_text("Traceback").count() == 0
                except Exception:
                    page.screenshot(path=str(SCREENSHOTS / "pacs-panel-failure.png"), full_page=True)
                    raise
                finally:
                    browser.close()
        modalities = {s.modality for s in list_series(PacsConnection(pacs.url), pacs.study_uid)}
        assert {"SR", "OT", "DOC", "MR", "CT"} <= modalities
