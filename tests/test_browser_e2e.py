"""End to end in a real browser: `streamlit run app.py` driven by Debian's Chromium through Playwright.

Upload a scan, read the predicted class, open the Explain page and see the three overlays, open the
metrics page. Screenshots go to test-artifacts/screenshots/ (printed). Skipped, with the reason,
when Chromium (/usr/bin/chromium, or BRAINSCAN_CHROMIUM) or Playwright is missing; `.ci/browser-deps.sh`
installs Chromium.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from core.model.catalog import sample_scans
from core.model.inference import classify
from tests.streamlit_server import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, REPO, server  # noqa: F401 (server: fixture)
from tests.test_app_pages import evaluated_model  # noqa: F401 (fixture)
from ui.presentation import format_probability

pytestmark = BROWSER_MARKS
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
TIMEOUT_MS = 90_000


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
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        try:
            page.goto(server)
            expect(page.get_by_text("Classify a brain MRI slice")).to_be_visible()
            expect(page.get_by_text("not a medical device").first).to_be_visible()
            page.locator("input[type=file]").set_input_files(str(sample))
            expect(page.get_by_text(f"{format_probability(expected.confidence)} probability")).to_be_visible()
            prediction = page.locator("span", has_text=expected.headline).first
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
            external = sorted({u for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                               and urlsplit(u).hostname not in ("localhost", "127.0.0.1")})
            assert external == [], f"the app made requests off this machine (it must work offline): {external}"
            assert any(u.endswith(".png") or "favicon" in u or "icon" in u for u in requests), requests
        finally:
            browser.close()


def test_a_refused_scan_is_refused_on_classify_and_on_explain_in_chromium(server):
    """A CT DICOM: the refusal and its reason on Classify (no class, no probabilities, no "Why?" link, no feedback
    form), and the same refusal on the Explain page reached through the navigation (no overlay, no class)."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_trust import _pydicom_file

    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 1400})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(server)
            page.locator("input[type=file]").set_input_files(str(_pydicom_file("CT_small.dcm")))
            expect(page.get_by_text("Not an MRI: not classified").first).to_be_visible()
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "refused-1-classify.png"), full_page=True)
            assert page.get_by_text("Why? See the explanations").count() == 0
            assert page.get_by_text("Record feedback").count() == 0
            assert page.get_by_text("probability").count() == 0
            page.get_by_role("link", name="Explain").first.click()
            expect(page.get_by_text("Explain the prediction")).to_be_visible()
            expect(page.get_by_text("Not an MRI: not classified").first).to_be_visible()
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "refused-2-explain.png"), full_page=True)
            assert page.locator("[data-testid=stImage] img").count() == 0
            assert page.get_by_text("Explanations ready").count() == 0
            for name in ("Glioma", "Meningioma", "Pituitary"):
                assert page.get_by_text(name).count() == 0, name
        finally:
            browser.close()
