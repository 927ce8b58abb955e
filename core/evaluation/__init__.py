"""Classification metrics and the evaluation of a model on a dataset's validation and test splits."""
