"""One case end to end in Chromium: a three-slice DICOM series, the most suspicious slice's explanations,
clinician feedback, the PDF report (its text checked) and the case's records in the audit view.

Skipped with the reason when Chromium or Playwright is missing (see tests/test_browser_e2e.py).
"""
from __future__ import annotations

import csv
import io

from pypdf import PdfReader

from core.io.images import read_image
from core.model.catalog import sample_scans
from tests.dicom_builder import mr_slice
from tests.streamlit_server import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, REPO, server  # noqa: F401 (server: fixture)
from tests.test_app_pages import evaluated_model  # noqa: F401 (fixture)

pytestmark = BROWSER_MARKS
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
TIMEOUT_MS = 120_000
CASE = "CASE-E2E-7"


def _series(folder):
    paths = []
    for i, scan in enumerate(sample_scans()[:3]):
        path = folder / f"IM{i:04d}.dcm"
        path.write_bytes(mr_slice(read_image(scan)[:, :, 0], 10.0 - 5 * i, i + 1))
        paths.append(str(path))
    return paths


def test_one_case_end_to_end(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{server}/?case={CASE}")
            expect(page.get_by_text("Classify a brain MRI slice")).to_be_visible()
            expect(page.get_by_role("textbox", name="Case id", exact=True)).to_have_value(CASE)
            page.locator("input[type=file]").set_input_files(_series(tmp_path))
            expect(page.get_by_text("DICOM series: 3 slices")).to_be_visible()
            expect(page.get_by_text("Series tumour probability")).to_be_visible()
            summary = page.get_by_text("Series tumour probability").inner_text()
            top = int(summary.split(" at slice ")[1].split(" ")[0])
            expect(page.get_by_text(f"Result for Slice {top} ")).to_be_visible()
            assert f"case={CASE}" in page.url and "model=" in page.url
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "case-1-series.png"), full_page=True)

            # the most suspicious slice is listed first: one click to its explanations
            page.get_by_role("button", name="Explain this slice").first.click()
            expect(page.get_by_text("Explanations ready")).to_be_visible()
            expect(page.get_by_text(f"Slice {top} ").first).to_be_visible()
            for label in ("Score-CAM", "SHAP", "LIME"):
                expect(page.get_by_text(f"{label} ·").first).to_be_visible()
            expect(page.get_by_role("button", name="Score-CAM overlay (PNG)")).to_be_visible()
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "case-2-explain.png"), full_page=True)

            page.get_by_role("link", name="Classify").first.click()
            expect(page.get_by_text("DICOM series: 3 slices")).to_be_visible()
            page.get_by_text("Wrong", exact=True).click()
            page.locator("[data-testid=stSelectbox]").filter(has_text="Correct class").click()
            page.get_by_role("option", name="Meningioma").click()
            page.get_by_role("textbox", name="Note (optional; no patient details)").fill("enhancing rim, review")
            page.get_by_role("button", name="Record feedback").click()
            expect(page.get_by_text("Feedback recorded")).to_be_visible()

            page.get_by_role("button", name="Build the case report").click()
            download_button = page.get_by_role("button", name="Download the case report (PDF)")
            expect(download_button).to_be_visible()
            with page.expect_download() as info:
                download_button.click()
            pdf = (tmp_path / "report.pdf")
            info.value.save_as(pdf)
            text = " ".join(" ".join(pg.extract_text().split()) for pg in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
            for expected in (CASE, "Case report", "Series tumour probability", f"at slice {top} of 3",
                             "evaluated-tiny", "Score-CAM", "SHAP", "LIME", "Research use only"):
                assert expected in text, expected
            assert "IM0000" not in text

            page.get_by_role("link", name="Audit trail").first.click()
            expect(page.get_by_text("Audit trail").first).to_be_visible()
            expect(page.get_by_role("textbox", name="Case id contains")).to_have_value(CASE)
            expect(page.get_by_text("records", exact=False).first).to_be_visible()
            with page.expect_download() as info:
                page.get_by_role("button", name="Download these records (CSV)").click()
            rows = list(csv.DictReader(io.StringIO((info.value.path()).read_text())))
            events = [r["event"] for r in rows]
            assert {r["case_id"] for r in rows} == {CASE}
            assert events.count("classification") == 3 and events.count("feedback") == 1
            assert events.count("report") == 1 and events.count("explanation") >= 3
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "case-3-audit.png"), full_page=True)
            assert page.get_by_text("Traceback").count() == 0
        finally:
            browser.close()
