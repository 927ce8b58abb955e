"""Explanations: the explainers, the metrics that measure their maps, the XAI evaluation, and overlays."""
