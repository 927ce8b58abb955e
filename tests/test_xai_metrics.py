"""XAI metrics on a model with a known answer: a perfect map must beat random, which beats the inverse."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import ExplainError
from core.xai.metrics import METRICS, evaluate_map, gaussian_map, random_map
from tests.xai_fixtures import SIZE, image, model, region_mask  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def scores(model, image):
    perfect = region_mask().astype(np.float32) + random_map(SIZE, 1) * 0.01
    maps = {"perfect": perfect, "random": random_map(SIZE, 0), "inverse": 1.0 - perfect}
    # The region model reads mean brightness, which a blur keeps: insertion starts from black here.
    black = {"insertion_auc": {"baseline": "black"}}
    return {name: evaluate_map(model, image, m, 0, seed=0, options=black) for name, m in maps.items()}


def test_registry_declares_direction():
    assert not METRICS["deletion_auc"].higher_is_better
    assert METRICS["insertion_auc"].higher_is_better
    assert METRICS["faithfulness_correlation"].higher_is_better


def test_deletion_orders_perfect_random_inverse(scores):
    d = {k: v["deletion_auc"].value for k, v in scores.items()}
    assert d["perfect"] < d["random"] < d["inverse"], d
    assert scores["perfect"]["deletion_auc"].higher_is_better is False


def test_insertion_orders_perfect_random_inverse(scores):
    i = {k: v["insertion_auc"].value for k, v in scores.items()}
    assert i["perfect"] > i["random"] > i["inverse"], i


def test_faithfulness_correlation_rewards_the_perfect_map(scores):
    f = {k: v["faithfulness_correlation"].value for k, v in scores.items()}
    assert f["perfect"] > 0.5 and f["perfect"] > f["random"] and f["inverse"] < 0, f


def test_curves_are_normalised_and_auc_in_unit_interval(scores):
    for per_map in scores.values():
        for name in ("deletion_auc", "insertion_auc"):
            x, y = per_map[name].curve
            assert x[0] == 0 and x[-1] == 1 and len(x) == len(y) == METRICS[name].default_options["steps"] + 1
            assert 0 <= per_map[name].value <= 1
        assert per_map["faithfulness_correlation"].curve is None


def test_deletion_curve_starts_at_the_original_probability(model, image, scores):
    p = float(np.asarray(model(image[None]))[0, 0])
    assert scores["perfect"]["deletion_auc"].curve[1][0] == pytest.approx(p, abs=1e-5)


def test_seeded_and_deterministic(model, image):
    a = evaluate_map(model, image, random_map(SIZE, 3), 0, seed=5, metrics=["faithfulness_correlation"])
    b = evaluate_map(model, image, random_map(SIZE, 3), 0, seed=5, metrics=["faithfulness_correlation"])
    c = evaluate_map(model, image, random_map(SIZE, 3), 0, seed=6, metrics=["faithfulness_correlation"])
    assert a["faithfulness_correlation"].value == b["faithfulness_correlation"].value
    assert a["faithfulness_correlation"].value != c["faithfulness_correlation"].value


def test_constant_map_gives_undefined_faithfulness(model, image):
    value = evaluate_map(model, image, np.ones((SIZE, SIZE)), 0, metrics=["faithfulness_correlation"])
    assert math.isnan(value["faithfulness_correlation"].value)


@pytest.mark.parametrize("saliency_shape, kwargs, error", [
    ((SIZE, SIZE), {"options": {"deletion_auc": {"steps": 5}, "insertion_auc": {"steps": 7}}}, None),
    ((SIZE, SIZE), {"options": {"deletion_auc": {"baseline": "blur"}}}, None),
    ((SIZE, SIZE + 2), {}, f"saliency map shape ({SIZE}, {SIZE + 2}) does not match the image ({SIZE}, {SIZE})"),
    ((SIZE, SIZE), {"metrics": ["bogus"]}, "unknown metric(s) ['bogus']"),
    ((SIZE, SIZE), {"options": {"deletion_auc": {"stepz": 3}}}, "unknown option(s) ['stepz'] for metric 'deletion_auc'"),
    ((SIZE, SIZE), {"options": {"deletion": {"steps": 3}}}, "unknown metric(s) ['deletion']"),
    ((SIZE, SIZE), {"options": {"deletion_auc": {"baseline": "grey"}}}, "unknown baseline 'grey'"),
    ((SIZE, SIZE), {"options": {"faithfulness_correlation": {"subset_fraction": 1.5}}},
     "subset_fraction must be in (0, 1), got 1.5"),
    ((SIZE, SIZE), {"options": {"insertion_auc": {"steps": 0}}}, "steps must be an integer >= 1, got 0"),
])
def test_options_and_errors(model, image, saliency_shape, kwargs, error):
    saliency = np.linspace(0, 1, int(np.prod(saliency_shape))).reshape(saliency_shape)
    if error is None:
        assert set(evaluate_map(model, image, saliency, 0, **kwargs)) == set(METRICS)
    else:
        with pytest.raises(ExplainError) as info:
            evaluate_map(model, image, saliency, 0, **kwargs)
        assert error in str(info.value)


def test_deletion_and_insertion_take_their_own_steps(model, image):
    saliency = np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE)
    out = evaluate_map(model, image, saliency, 0, metrics=["deletion_auc", "insertion_auc"],
                       options={"deletion_auc": {"steps": 4}, "insertion_auc": {"steps": 8}})
    assert len(out["deletion_auc"].curve[0]) == 5 and len(out["insertion_auc"].curve[0]) == 9


def test_reference_maps():
    g = gaussian_map(33)
    assert g.shape == (33, 33) and g.argmax() == 33 * 16 + 16
    assert np.array_equal(random_map(8, 1), random_map(8, 1)) and not np.array_equal(random_map(8, 1), random_map(8, 2))


def test_sanity_copy_reinitialises_head_and_top_layers_only(model, image):
    from core.xai.metrics.sanity import randomised_copy, rank_correlation

    before = np.asarray(model(image[None]))
    copy = randomised_copy(model, seed=0, top_backbone_layers=1)
    assert not np.allclose(copy.get_layer("predictions").get_weights()[0], model.get_layer("predictions").get_weights()[0])
    assert not np.allclose(copy.get_layer("conv").get_weights()[0], model.get_layer("conv").get_weights()[0])
    assert np.array_equal(np.asarray(model(image[None])), before), "randomising the copy left the original as it was"
    assert not np.allclose(np.asarray(copy(image[None])), before), "the copy predicts differently"
    a = random_map(SIZE, 0)
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(1.0)  # absolute values, as in Adebayo et al.
    assert abs(rank_correlation(a, random_map(SIZE, 1))) < 0.1


def test_mean_ci_is_a_t_interval_and_ignores_undefined_values():
    from core.xai.evaluation import mean_ci

    out = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert out["mean"] == 2.0 and out["n"] == 3
    assert out["ci95"] == pytest.approx([2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)], rel=1e-5)
    assert mean_ci([])["mean"] is None
