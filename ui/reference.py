"""The specification's reported numbers, shown beside ours (README, dashboard, benchmarks)."""

SPEC_RESULTS = {
    "source": "specification (EfficientNetB4, ImageNet weights, Testing split 50/50 into validation/test)",
    "accuracy": 0.8534,
    "loss": 0.3593,
    "macro_f1": 0.8473,
    "cohen_kappa": 0.8029,
    "macro_auc": 0.9768,
}

SPEC_XAI = {
    "source": "specification (one model, apparently very few images, no baselines)",
    "scorecam": {"deletion_auc": 0.4039, "insertion_auc": 0.7420, "faithfulness_correlation": -0.0059},
    "shap": {"deletion_auc": 0.3420, "insertion_auc": 0.5683, "faithfulness_correlation": 0.0655},
    "lime": {"deletion_auc": 0.2822, "insertion_auc": 0.6504, "faithfulness_correlation": 0.0027},
}

TARGETS = {"test_accuracy": 0.97, "leakage_free_macro_f1": 0.96, "macro_auc": 0.995}
