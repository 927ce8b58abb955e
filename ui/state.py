"""Every `st.session_state` key and widget key of the app, named once (pages and tests use these names)."""

# Values the app keeps across reruns and pages
MODEL = "model_path"                  # path of the chosen model folder (the sidebar's selectbox)
SCANS = "scans"                       # {file name: bytes} of this session, in upload order
SCAN = "scan"                         # the scan chosen for details and explanations (the widgets' key)
SCAN_CHOICE = "scan_choice"           # the same choice in a key no widget owns (kept across pages)
MEASURE_FOR = "measure_for"           # (model, scan, class) whose faithfulness was asked for
LAUNCHER_UNLOCKED = "launcher_unlocked"     # the password this session unlocked the launcher with (re-checked)
LAUNCHER_ATTEMPTS = "launcher_attempts"     # the session's AttemptLimiter (failed passwords, lock-out)
LAUNCHER_MESSAGE = "launcher_message"       # why the last password attempt was refused
LAUNCH_POLLING = "launch_polling"
SHOW_FILE_NAMES = "show_file_names"   # the sidebar toggle: real file names instead of "Scan 1 (hash)"; off
SHOW_FILE_NAMES_CHOICE = "show_file_names_choice"  # the toggle's value, kept across page switches

# Widgets
UPLOADS = "uploads"
SAMPLE_PREFIX = "sample_"
DOWNLOAD_CSV = "download_csv"
EXPLAIN_CLASS = "explain_class"
TOGGLE_PREFIX = "toggle_"
OVERLAY_ALPHA = "overlay_alpha"
EXPERT_OUTLINE = "expert_outline"    # draw the expert tumour mask's outline (dataset scans that have one)
SHAP_POSITIVE = "shap_positive_only"  # SHAP overlay: evidence for the class only
COMPARE_METHOD = "compare_method"
MEASURE = "measure"
CONFUSION_MODE = "confusion_mode"
PER_CLASS_SPLIT = "per_class_split"
COMPARE_MODELS = "compare_models"
LOCALISATION_SUBSET = "localisation_subset"
LAUNCHER_PASSWORD = "launcher_password_input"
LAUNCH_PREFIX = "launch_"            # the training launcher's form fields: launch_data, launch_backbone, ...
LIVE_CURVES_PREFIX = "live_"


def launch_key(field: str) -> str:
    """The widget key of one launcher form field (e.g. 'data' -> 'launch_data')."""
    return LAUNCH_PREFIX + field


# Clinical workflow (cases, series, audit, feedback, report)
CASE_ID = "case_id"                   # the current case's identifier (also in the URL: ?case=...)
CASE_INPUT = "case_id_input"          # the sidebar's case id field
NEW_CASE = "new_case"
SESSION_ID = "session_id"             # random id of this browser session, recorded in the audit trail
UPLOAD_NONCE = "upload_nonce"         # bumped to clear the uploader (a sample or a new case replaces uploads)
SERIES = "series"                     # the DICOM series of this session (None for separate scans)
HEADERS = "dicom_headers"             # {scan name: technical DICOM header}
FAILURES = "failures"                 # {file name: why it could not be read}
AUDITED = "audited"                   # audit keys recorded in this session (no duplicate records on reruns)
SLICE = "slice"                       # the series' slice slider
EXPLAIN_SLICE_PREFIX = "explain_slice_"
FEEDBACK_PREFIX = "feedback_"
REPORT_METHODS = "report_methods"
REPORT_FAITHFULNESS = "report_faithfulness"
REPORT_BUILD = "report_build"
REPORT_PDF = "report_pdf"             # (case, scans, model, methods) -> PDF bytes of the last report built
DOWNLOAD_REPORT = "download_report"
DOWNLOAD_OVERLAY_PREFIX = "download_overlay_"
AUDIT_CASE = "audit_case"
AUDIT_EVENTS = "audit_events"
AUDIT_SCAN = "audit_scan"
DOWNLOAD_AUDIT = "download_audit"
DOWNLOAD_DISAGREEMENTS = "download_disagreements"
QUERY_MODEL = "model"                 # URL query parameters
QUERY_CASE = "case"
CASE_FROM_URL = "case_from_url"       # the case id came from the URL (a reload or a link): its scans are gone


def uploads_key(nonce: int) -> str:
    """The uploader's widget key: a new key clears it (the first one is UPLOADS, as tests address it)."""
    return UPLOADS if not nonce else f"{UPLOADS}_{nonce}"
