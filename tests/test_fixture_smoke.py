import numpy as np

from core.io.images import load_for_model
from core.model.inference import predict_proba


def test_tiny_model_learns_synthetic_classes(tiny_model, tiny_dataset):
    model, card = tiny_model
    files = sorted((tiny_dataset / "Testing").glob("*/*.png"))
    images = np.stack([load_for_model(f, card.image_size) for f in files])
    truth = np.array([card.class_names.index(f.parent.name) for f in files])
    accuracy = float((predict_proba(model, images).argmax(1) == truth).mean())
    assert accuracy >= 0.9
