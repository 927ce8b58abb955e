"""BrainScan XAI: `streamlit run app.py`. Navigation, the shared sidebar and the research-use notice."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.ast_guard import serialise_ast_parsing
from ui.case import case_panel
from ui.keras_session import keep_keras_kernels
from ui.services import keep_scan_choice, privacy_toggle
from ui.sidebar import model_picker, training_launcher

ICON = Path(__file__).resolve().parent / "assets" / "icon.png"

# The favicon is a file of ours: a ":material/...:" page icon makes the browser fetch it from Google's font host,
# and the app must work offline (tests/test_browser_e2e.py checks that no request leaves localhost).
st.set_page_config(page_title="BrainScan XAI", page_icon=str(ICON), layout="wide")
serialise_ast_parsing()  # before any page compiles beside the explainers' warm-up thread (ui/ast_guard.py)
keep_keras_kernels()

# URL paths differ from the file names on purpose: a page hash equal to a `pages/` file's hash makes AppTest run
# that file alone, without this script's sidebar (still so with Streamlit 1.67; tests/test_app_pages.py checks it).
PAGES = [
    st.Page("pages/classify.py", title="Classify", icon=":material/radiology:", default=True, url_path="scan"),
    st.Page("pages/explain.py", title="Explain", icon=":material/visibility:", url_path="explanations"),
    st.Page("pages/metrics.py", title="Model metrics", icon=":material/monitoring:", url_path="model-metrics"),
    st.Page("pages/audit_trail.py", title="Audit trail", icon=":material/history:", url_path="audit-trail"),
    st.Page("pages/pacs.py", title="PACS", icon=":material/dns:", url_path="pacs-worklist"),
]

page = st.navigation(PAGES)
keep_scan_choice()
st.sidebar.markdown("### BrainScan XAI")
st.sidebar.caption("Research use only — not a medical device.")
case_panel()
model_picker()
privacy_toggle()
training_launcher()
page.run()
