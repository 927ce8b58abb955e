"""The case report: model identity, overlays with their legends, and the PDF (above xai/evaluation, below cli)."""

REPORT_MAX_SCANS = 8  # scan sections per report
TOP_SLICES = 3  # a series reports its most suspicious slices in full (every slice is listed)
