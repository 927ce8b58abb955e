"""Datasets: discovering the Kaggle layout, splits, loading scans, and the leakage check (source groups). Uses `core.io`."""
