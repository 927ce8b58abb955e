"""A DICOMweb client for a PACS (QIDO-RS search, WADO-RS retrieve, STOW-RS store) over `dicomweb-client`.

`connection` holds where the PACS is and how to log in (from `core.settings`), `failures` turns every transport
problem into one `PacsError` without credentials, `query` searches studies and lists series, `transfer` retrieves
one series within limits and stores result objects. Nothing here classifies: `core.report.pacs_case` does.
"""
