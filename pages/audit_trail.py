"""Audit trail: every classification, explanation, report and feedback of every case, filterable, as CSV."""
from __future__ import annotations

import streamlit as st

from ui.audit_chain import chain_banner
from ui.clinical import audit_view
from ui.services import notice

st.title("Audit trail")
notice()
st.markdown("Append-only records: time (UTC), event, case id, SHA-256 of the scan and of the model file, the "
            "result, the app version and the session. No file names and no patient details are stored.")
chain_banner()
audit_view()
