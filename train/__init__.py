"""Training entry point package: `python -m train ...`."""
