"""PACS: search studies over DICOMweb, classify one series, send the results back (explicitly)."""
from __future__ import annotations

import streamlit as st

from ui.pacs_view import CASE, case_view, connection_or_help, search_form, send_panel, study_results
from ui.services import active_model, notice

st.title("Work from the PACS")
notice()
connection = connection_or_help()
if connection is None:
    st.stop()
loaded = active_model()  # first: the panel is usable once the model it classifies with is loaded
if loaded is None:
    st.stop()
entry, model, card = loaded
search_form(connection)
study_results(connection, entry, model, card)
case = st.session_state.get(CASE)
if case is not None:
    case_view(case)
    send_panel(connection, entry, model, card, case)
