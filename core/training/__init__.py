"""Training: the configuration and loop, augmentation, run-folder files, the launcher the app uses, and the
registry of models the app can pick (the bundled one and finished runs)."""
