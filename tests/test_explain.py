"""Explainers on hand-built models with known answers: localisation, fidelity, contract, errors."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import ExplainError
from core.xai.explainers import EXPLAINERS, explain
from tests.xai_fixtures import SIZE, image, model, no_pool_model, region_image, region_mask  # noqa: F401

METHODS = list(EXPLAINERS)
FAST = {"scorecam": {}, "shap": {"nsamples": 16}, "lime": {"num_samples": 150, "n_segments": 30}}


@pytest.fixture(scope="module")
def explanations(model, image):
    return {m: explain(model, image, m, 0, **FAST[m]) for m in METHODS}


def test_region_model_is_what_the_tests_assume(model, image):
    probs = np.asarray(model(image[None]))[0]
    blank = np.asarray(model(region_image(blob=False)[None]))[0]
    assert probs[0] > 0.9 and blank[0] < 0.1


@pytest.mark.parametrize("method", METHODS)
def test_most_mass_lies_in_the_region_that_drives_the_output(explanations, method):
    heat = np.maximum(explanations[method].map, 0)
    share = heat[region_mask()].sum() / heat.sum()
    assert share > 0.6, f"{method}: only {share:.2f} of the positive mass in the region (area share 0.10)"


@pytest.mark.parametrize("method", METHODS)
def test_fidelity_beats_the_random_map(model, image, explanations, method):
    from core.xai.metrics import evaluate_map, random_map

    options = {"metrics": ["deletion_auc", "insertion_auc"],
               "options": {"insertion_auc": {"baseline": "black"}}}  # blur keeps the mean
    ours = evaluate_map(model, image, explanations[method].map, 0, **options)
    rnd = evaluate_map(model, image, random_map(SIZE, 0), 0, **options)
    assert ours["deletion_auc"].value < rnd["deletion_auc"].value - 0.1
    assert ours["insertion_auc"].value > rnd["insertion_auc"].value + 0.1


@pytest.mark.parametrize("method", METHODS)
def test_contract_shape_range_determinism_and_no_mutation(model, image, explanations, method):
    first = explanations[method]
    before = image.copy()
    again = explain(model, image, method, 0, **FAST[method])
    np.testing.assert_array_equal(image, before)
    assert first.map.shape == (SIZE, SIZE) and first.map.dtype == np.float32
    assert first.method == method and first.class_index == 0 and first.seconds > 0
    assert first.signed == EXPLAINERS[method].signed
    if not first.signed:
        assert first.map.min() >= 0 and first.map.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(first.map, again.map)
    assert first.options == {**EXPLAINERS[method].default_options, **FAST[method]}


def test_a_different_seed_changes_the_sampling_methods(model, image, explanations):
    other = explain(model, image, "lime", 0, **FAST["lime"], seed=1)
    assert not np.array_equal(other.map, explanations["lime"].map)


def test_the_predicted_class_is_explained_by_default(model, image):
    assert explain(model, image, "scorecam").class_index == int(np.asarray(model(image[None]))[0].argmax())


@pytest.mark.parametrize("method, kwargs, image_shape, error", [
    ("scorecam", {"max_channels": 2}, (SIZE, SIZE, 3), None),
    ("shap", {"explainer": "gradient", "nsamples": 8}, (SIZE, SIZE, 3), None),
    ("nosuch", {}, (SIZE, SIZE, 3), "unknown explanation method 'nosuch'"),
    ("scorecam", {}, (SIZE + 1, SIZE, 3), f"shape ({SIZE}, {SIZE}, 3)"),
    ("scorecam", {}, (SIZE, SIZE), f"got shape ({SIZE}, {SIZE})"),
    ("lime", {"bogus": 1}, (SIZE, SIZE, 3), "unknown option(s) ['bogus']"),
    ("scorecam", {"max_channels": -3}, (SIZE, SIZE, 3), "max_channels must be an integer >= 0, got -3"),
    ("scorecam", {"weighting": "magic"}, (SIZE, SIZE, 3), "weighting must be one of"),
    ("shap", {"explainer": "kernel"}, (SIZE, SIZE, 3), "explainer must be one of"),
    ("shap", {"background": np.zeros((2, 8, 8, 3))}, (SIZE, SIZE, 3), "got (2, 8, 8, 3)"),
    ("lime", {"num_samples": 5}, (SIZE, SIZE, 3), "num_samples must be an integer >= 10, got 5"),
])
def test_options_and_errors(model, method, kwargs, image_shape, error):
    image = np.full(image_shape, 100.0, np.float32)
    if error is None:
        result = explain(model, image, method, 1, **kwargs)
        assert result.map.shape == (SIZE, SIZE) and np.isfinite(result.map).all()
    else:
        with pytest.raises(ExplainError) as info:
            explain(model, image, method, 1, **kwargs)
        assert error in str(info.value)


def test_class_index_out_of_range_names_the_value(model, image):
    with pytest.raises(ExplainError, match=r"\[0, 1\], got 7"):
        explain(model, image, "scorecam", 7)


def test_shap_uses_deep_explainer_where_it_can_and_says_why_not_elsewhere(model, image, explanations):
    from core.xai.explainers.shap_method import deep_unsupported_reason

    assert explanations["shap"].extras["explainer"] == "deep"
    assert "DeepExplainer" in explanations["shap"].note
    assert deep_unsupported_reason(model) == ""
    from core.model.factory import build_model

    tiny_b0 = build_model(4, 32, "EfficientNetB0", None)
    assert "DepthwiseConv2D" in deep_unsupported_reason(tiny_b0)
    with pytest.raises(ExplainError, match="use explainer='gradient'"):
        explain(tiny_b0, image, "shap", 0, explainer="deep")


def test_shap_fallback_background_is_documented_in_the_note(explanations):
    assert "blurred copies of the input" in explanations["shap"].note


def test_lime_keeps_signed_region_weights(explanations):
    extras = explanations["lime"].extras
    assert extras["segments"].shape == (SIZE, SIZE)
    np.testing.assert_allclose(extras["signed_map"], extras["weights"][extras["segments"]])


def test_faster_scorecam_keeps_the_highest_variance_channels():
    from core.xai.explainers.scorecam import select_channels

    acts = np.zeros((4, 4, 5), np.float32)
    acts[..., 1] = np.arange(16).reshape(4, 4)
    acts[..., 3] = np.arange(16).reshape(4, 4) * 3
    np.testing.assert_array_equal(select_channels(acts, 2), [1, 3])
    np.testing.assert_array_equal(select_channels(acts, 0), np.arange(5))


def test_scorecam_matches_tf_keras_vis():
    try:
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.scores import CategoricalScore
    except ImportError as exc:  # pragma: no cover - dev-only dependency
        pytest.skip(f"tf-keras-vis cannot be imported ({exc}); it is the reference implementation")
    model = no_pool_model()
    image = region_image()
    for class_index in range(4):
        ref = Scorecam(model, clone=True)(CategoricalScore([class_index]), image[None], penultimate_layer="feat")[0]
        same = explain(model, image, "scorecam", class_index, max_channels=0, weighting="softmax").map
        assert np.corrcoef(same.ravel(), ref.ravel())[0, 1] >= 0.99


def test_scorecam_upsampling_matches_opencv_bilinear():
    import cv2

    from core.xai.explainers.scorecam import upsample

    maps = np.random.default_rng(0).random((4, 5, 300)).astype(np.float32)
    expected = np.concatenate([cv2.resize(np.ascontiguousarray(maps[..., i:i + 100]), (32, 32))
                               for i in range(0, 300, 100)], axis=-1)
    np.testing.assert_allclose(upsample(maps, 32), expected, atol=1e-5)


def test_scorecam_cic_falls_back_to_scores_when_every_channel_hurts(monkeypatch, model, image):
    import core.xai.explainers.scorecam as sc

    monkeypatch.setattr(sc, "_weights", lambda *a: -np.ones(len(a[3])))
    result = explain(model, image, "scorecam", 0, weighting="cic")
    assert "score (the increase-of-confidence map was empty)" in result.note and result.map.max() == 1


def test_shap_gradient_equals_shaps_own_for_every_class(model, image):
    """Our GradientExplainer shares one traced gradient across classes; the values must be shap's."""
    import shap

    from core.xai.explainers.background import fallback_background

    background = fallback_background(image)
    reference = shap.GradientExplainer(model, background, batch_size=50)
    for class_index in range(int(model.output_shape[-1])):
        ours = explain(model, image, "shap", class_index, explainer="gradient", nsamples=24, batch_size=50,
                       smooth_sigma=0)  # the raw values (the default map is smoothed)
        values, _ = reference.shap_values(image[None], nsamples=24, ranked_outputs=np.array([[class_index]]),
                                          output_rank_order="custom", rseed=0)
        expected = np.asarray(values)[0, ..., 0].sum(axis=-1)
        np.testing.assert_allclose(ours.map, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_warm_up_runs_every_method_and_changes_no_result(model, image):
    from core.xai.explainers import warm_up

    before = {m: explain(model, image, m, 1, **FAST[m]).map for m in METHODS}
    seconds = warm_up(model)
    assert list(seconds) == METHODS and all(s > 0 for s in seconds.values())
    for method in METHODS:
        np.testing.assert_array_equal(explain(model, image, method, 1, **FAST[method]).map, before[method])


@pytest.mark.parametrize("method", METHODS)
def test_warm_up_options_are_valid_and_cheaper_than_the_defaults(method):
    spec = EXPLAINERS[method]
    assert set(spec.warm_up_options) <= set(spec.default_options)
    for name, value in spec.warm_up_options.items():
        default = spec.default_options[name]
        assert 0 < value <= default or default == 0, (name, value, default)
