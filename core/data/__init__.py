"""Datasets: discovering the Kaggle layout, splits, loading scans, and the leakage audit. Uses `core.io`."""
