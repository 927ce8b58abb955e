"""BrainScan XAI: `streamlit run app.py`. Navigation, the shared sidebar and the research-use notice."""
from __future__ import annotations

import streamlit as st

from ui.case import case_panel
from ui.keras_session import keep_keras_kernels
from ui.sidebar import model_picker, training_launcher

st.set_page_config(page_title="BrainScan XAI", page_icon=":material/neurology:", layout="wide")
keep_keras_kernels()

# URL paths differ from the file names on purpose: a page hash equal to a `pages/` file's hash makes AppTest run
# that file alone, without this script's sidebar (still so with Streamlit 1.67; tests/test_app_pages.py checks it).
PAGES = [
    st.Page("pages/classify.py", title="Classify", icon=":material/radiology:", default=True, url_path="scan"),
    st.Page("pages/explain.py", title="Explain", icon=":material/visibility:", url_path="explanations"),
    st.Page("pages/metrics.py", title="Model metrics", icon=":material/monitoring:", url_path="model-metrics"),
    st.Page("pages/audit.py", title="Audit trail", icon=":material/history:", url_path="audit-trail"),
]

page = st.navigation(PAGES)
st.sidebar.markdown("### BrainScan XAI")
st.sidebar.caption("Research use only — not a medical device.")
case_panel()
model_picker()
training_launcher()
page.run()
