"""Every `st.session_state` key and widget key of the app, named once (pages and tests use these names)."""

# Values the app keeps across reruns and pages
MODEL = "model_path"                  # path of the chosen model folder (the sidebar's selectbox)
SCANS = "scans"                       # {file name: bytes} of this session, in upload order
SCAN = "scan"                         # the scan chosen for details and explanations
UPLOAD_SIGNATURE = "upload_signature"  # names and sizes of the last upload, to notice a new one
MEASURE_FOR = "measure_for"           # (model, scan, class) whose faithfulness was asked for
LAUNCHER_UNLOCKED = "launcher_unlocked"     # the password this session unlocked the launcher with (re-checked)
LAUNCHER_ATTEMPTS = "launcher_attempts"     # the session's AttemptLimiter (failed passwords, lock-out)
LAUNCHER_MESSAGE = "launcher_message"       # why the last password attempt was refused
LAUNCH_POLLING = "launch_polling"

# Widgets
UPLOADS = "uploads"
SAMPLE_PREFIX = "sample_"
DOWNLOAD_CSV = "download_csv"
EXPLAIN_CLASS = "explain_class"
TOGGLE_PREFIX = "toggle_"
OVERLAY_ALPHA = "overlay_alpha"
COMPARE_METHOD = "compare_method"
MEASURE = "measure"
METRICS_MODEL = "metrics_model"
CONFUSION_MODE = "confusion_mode"
PER_CLASS_SPLIT = "per_class_split"
COMPARE_MODELS = "compare_models"
LAUNCHER_PASSWORD = "launcher_password_input"
LAUNCH_PREFIX = "launch_"            # the training launcher's form fields: launch_data, launch_backbone, ...
LIVE_CURVES_PREFIX = "live_"


def launch_key(field: str) -> str:
    """The widget key of one launcher form field (e.g. 'data' -> 'launch_data')."""
    return LAUNCH_PREFIX + field
