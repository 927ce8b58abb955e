"""Faithfulness metrics: does removing what the map marks change the model's score? They need the model.

Deletion and insertion AUC (RISE), faithfulness correlation (Bhatt et al.) and ROAD (Rong et al.), on the
perturbations of `perturbation`."""
