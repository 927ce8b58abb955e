"""Known-limits sentences computed from a card's saved external results (fake cards, no model needed)."""
from __future__ import annotations

import copy

import pytest

from core.model.card import ModelCard
from core.model.limits import fraction_words, headline_limit, known_limits, limits, set_words


def _proportion(k: int, n: int, ci: tuple[float, float]) -> dict:
    return {"value": k / n, "ci95": list(ci), "k": k, "n": n}


EXTERNAL = {
    "tumour_navoneel": {"n": 111, "predicted": {"glioma": 10, "meningioma": 20, "notumor": 74, "pituitary": 7},
                        "tumour_recall": _proportion(37, 109, (0.257, 0.432)),
                        "notumor_specificity": _proportion(1, 2, (0.095, 0.905))},
    "notumor_brisc": {"n": 400, "predicted": {"notumor": 343},
                      "notumor_specificity": _proportion(343, 400, (0.820, 0.888)),
                      "per_plane": {"axial": {"n": 134, "notumor_specificity": _proportion(125, 134, (0.88, 0.96))},
                                    "coronal": {"n": 133, "notumor_specificity": _proportion(93, 133, (0.62, 0.77))}}},
    "far_ood": {"n": 130, "predicted": {"notumor": 96}},
}


def _card(external=None, trust=None, **training) -> ModelCard:
    evaluation = {"test": {"n": 10, "accuracy": 0.9}}
    if external is not None:
        evaluation["external"] = copy.deepcopy(external)
    if trust is not None:
        evaluation["trust"] = trust
    return ModelCard(class_names=["glioma", "meningioma", "notumor", "pituitary"], image_size=32, backbone="tiny",
                     weights_origin="none", feature_layer="conv", evaluation=evaluation,
                     training={"config": training} if training else {})


@pytest.mark.parametrize("rate, words", [
    (0.661, "about 2 in 3"), (0.704, "about 7 in 10"), (0.25, "about 1 in 4"), (0.142, "about 1 in 7"),
    (0.5, "about 1 in 2"), (0.2, "about 1 in 5"), (0.056, "about 1 in 18"), (0.05, "about 1 in 20"),
    (0.95, "about 19 in 20"), (0.3, "about 3 in 10"), (0.0, "none"), (1.0, "all"),
])
def test_fraction_words(rate, words):
    assert fraction_words(rate) == words


def test_fraction_words_rejects_nan():
    with pytest.raises(ValueError):
        fraction_words(float("nan"))


def test_missed_tumours_come_first_with_numbers_from_the_card():
    sentences = known_limits(_card(EXTERNAL))
    assert sentences[0] == ("This model misses about 2 in 3 tumours on tumour scans from another public collection "
                            "(navoneel, mixed MRI sequences): tumour recall 34%, 95% CI 26–43%, 37 of 109 found.")
    assert headline_limit(_card(EXTERNAL)) == sentences[0]


def test_normal_scans_called_tumour_name_the_worst_plane():
    sentence = known_limits(_card(EXTERNAL))[1]
    assert sentence.startswith("This model calls about 1 in 7 normal scans a tumour on brain scans from another "
                               "collection (BRISC 2025), about 3 in 10 on coronal slices:")
    assert "no-tumour specificity 86%, 95% CI 82–89%, 343 of 400 called normal." in sentence
    assert "axial" not in sentence  # better than the set as a whole: not named


def test_small_or_missing_figures_give_no_sentence():
    sentences = known_limits(_card(EXTERNAL))
    assert len(sentences) == 2  # navoneel's 2 normal scans (n < 20) and far_ood (no truth) give none
    assert not any("1 of 2" in s for s in sentences)


def test_the_input_gate_sentence_from_the_trust_results():
    trust = {"external": {"far_ood": {"n": 130, "refused": 0.8, "refused_ci95": [0.723, 0.860]}}}
    found = limits(_card(EXTERNAL, trust))
    assert [limit.kind for limit in found] == ["missed_tumour", "false_tumour", "not_refused"]
    assert found[-1].text == ("The input check lets about 1 in 5 images that are not brain MRI (photos, X-rays, "
                              "other body parts) through to the classifier: refused 80%, 95% CI 72–86%, 104 of 130.")


def test_good_results_are_not_called_limits():
    good = {"set_a": {"n": 200, "tumour_recall": _proportion(198, 200, (0.96, 1.0))},
            "set_b": {"n": 200, "notumor_specificity": _proportion(196, 200, (0.95, 0.99))}}
    assert known_limits(_card(good)) == []
    assert headline_limit(_card(good)) is None


def test_a_card_without_external_results_gives_nothing():
    assert known_limits(_card()) == [] and headline_limit(_card()) is None
    assert known_limits(None) == [] and headline_limit(None) is None
    assert known_limits({}) == [] and known_limits({"evaluation": None}) == []


@pytest.mark.parametrize("external", [
    "not a dict", [], {"x": None}, {"x": {"tumour_recall": "high"}}, {"x": {"tumour_recall": {"value": None}}},
    {"x": {"tumour_recall": {"value": 1.7, "n": 50}}}, {"x": {"tumour_recall": {"value": 0.5, "n": "fifty"}}},
    {"x": {"notumor_specificity": {"value": float("nan"), "n": 50}}},
    {"x": {"notumor_specificity": {"value": 0.5, "n": 50}, "per_plane": "axial"}},
])
def test_malformed_external_results_raise_nothing(external):
    card = _card()
    card.evaluation["external"] = external
    card.evaluation["trust"] = {"external": {"far_ood": "broken"}}
    found = known_limits(card)
    assert all(isinstance(s, str) for s in found)


def test_a_saved_card_as_json_dict_and_an_unknown_set_name():
    card = _card({"hospital_x": {"n": 60, "tumour_recall": {"value": 0.5, "n": 60}}}).to_dict()
    assert known_limits(card) == ["This model misses about 1 in 2 tumours on the external set 'hospital_x': "
                                  "tumour recall 50%, 30 of 60 found."]


def test_navoneel_is_described_as_seen_collection_when_training_used_it():
    card = _card(EXTERNAL, tumour_collection="/data/brain-mri-tumour-normal")
    assert "new patients from a collection seen in training" in headline_limit(card)
    assert set_words("tumour_navoneel") != set_words("tumour_navoneel", card)
