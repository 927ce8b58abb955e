"""Screenshots of the assessment states on Classify and Explain, and the PDF scan page of each, on the bundled model.

    .venv/bin/python docs/screenshots/capture.py [--data ../shared/data/brain-tumor-mri]

Starts `streamlit run app.py` on a free loopback port (as the browser tests do), drives Debian's Chromium through
Playwright at 1366 px wide, and renders the reports' scan pages with pdftoppm. Writes docs/screenshots/*.png.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.training.launcher import default_data_dir  # noqa: E402
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, streamlit_app  # noqa: E402

OUT = Path(__file__).resolve().parent
# The Testing scans tests/test_one_assessment.py walks through every surface, chosen there for their state under the
# bundled model (that test fails if the model answers otherwise).
SCANS = {"confident": "glioma/Te-glTr_0001.jpg", "several": "glioma/Te-gl_0018.jpg",
         "low-confidence": "glioma/Te-gl_0022.jpg", "gate-refused": "glioma/Te-gl_0024.jpg"}
TIMEOUT_MS = 600_000
PAGE_HEIGHT = 2600     # tall enough for a whole page: Streamlit scrolls its own container, not the page


def _ct() -> Path:
    import pydicom.data

    return next((Path(pydicom.data.__file__).parent / "test_files").rglob("CT_small.dcm"))


def browser_shots(files: dict[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "streamlit.log", "wb") as log, \
            streamlit_app({"BRAINSCAN_STATE_DIR": tmp, "BRAINSCAN_DB_URL": ""}, log, seconds=300) as (url, _), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for state, path in files.items():
            page = browser.new_page(viewport={"width": 1366, "height": PAGE_HEIGHT})  # the app scrolls inside
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.locator("input[type=file]").set_input_files(str(path))
            expect(page.get_by_text("Result for").first).to_be_visible()
            expect(page.locator("[data-testid=stImage] img").first).to_be_visible()
            page.wait_for_timeout(2500)
            page.screenshot(path=str(OUT / f"{state}-classify.png"), full_page=True)
            page.get_by_role("link", name="Explain").first.click()
            expect(page.get_by_text("Explain the prediction")).to_be_visible()
            if "refused" not in state:
                expect(page.get_by_text("Explanations ready")).to_be_visible()
            page.wait_for_timeout(2500)
            page.screenshot(path=str(OUT / f"{state}-explain.png"), full_page=True)
            page.close()
            print(f"{state}: {OUT / f'{state}-classify.png'}, {OUT / f'{state}-explain.png'}", flush=True)
        browser.close()


def pdf_pages(files: dict[str, Path]) -> None:
    from core.model.factory import default_model_dir, load_model
    from core.report.case import make_case_report

    folder = default_model_dir()
    model, card = load_model(folder)
    with tempfile.TemporaryDirectory() as tmp:
        for state, path in files.items():
            pdf, _ = make_case_report(model, card, folder, {path.name: path.read_bytes()}, f"CASE-{state.upper()}")
            (Path(tmp) / "r.pdf").write_bytes(pdf)
            subprocess.run(["pdftoppm", "-r", "80", "-png", "-f", "2", "-l", "2", str(Path(tmp) / "r.pdf"),
                            str(OUT / f"{state}-pdf")], check=True, timeout=300)
            print(f"{state}: PDF page 2 rendered", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args()
    files = {"refused": _ct(), **{k: Path(args.data) / "Testing" / v for k, v in SCANS.items()}}
    if not args.skip_browser:
        browser_shots(files)
    pdf_pages(files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
