"""The audit page's banner: whether the store's hash chain verifies, and up to which record."""
from __future__ import annotations

import streamlit as st

from core.errors import AuditError
from ui.case import audit_store


def chain_banner() -> None:
    """Green 'chain verified up to record N', or a red banner naming the first broken link."""
    store = audit_store()
    if store is None:
        return
    try:
        report = store.verify()
    except AuditError as exc:
        st.error(f"The audit chain could not be checked: {exc}")
        return
    if report.ok:
        st.success(f"Chain verified up to record {report.verified_up_to} ({report.records} records; head "
                   f"`{report.head_hash[:16]}…`). Keep the head elsewhere to detect a rewritten history.",
                   icon=":material/verified:")
    else:
        st.error(f"**Audit chain broken at record {report.broken_id}**: {report.problem}. Verified up to record "
                 f"{report.verified_up_to or '–'}; records after it cannot be trusted. Check with "
                 f"`python -m core audit verify` and restore from a backup (`python -m core state restore`).",
                 icon=":material/gpp_bad:")
