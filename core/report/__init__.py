"""The case report: model identity, overlays with their legends, and the PDF (above xai/evaluation, below cli)."""
