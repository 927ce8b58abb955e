"""Localisation metrics, ROAD, saturation, agreement, the head mask and the expert-mask loader.

Hand-computed values on tiny arrays, known answers on hand-built models, and a cross-check against
Quantus (the reference implementations) on a handful of real scans with their expert masks.
"""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import ExplainError
from core.xai.agreement import agreement, top_iou
from core.xai.anatomy import head_mask, outside_share
from core.xai.metrics import LOCALISATION, evaluate_map, gaussian_map, localise_map, random_map, uniform_map
from core.xai.metrics.faithfulness.perturbation import noisy_linear_imputation, saturation
from tests.conftest import REAL_DATA
from tests.xai_fixtures import SIZE, region_image, region_mask, region_model

MASKS = REAL_DATA.parent / "brain-tumor-mri-masks"


def _square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_metrics_declare_direction():
    assert all(spec.higher_is_better for spec in LOCALISATION.values())


def test_hit_rate_is_summarised_as_a_proportion_with_a_wilson_interval():
    """2 hits in 100: a t-interval would start below zero; the Wilson interval stays in [0, 1] and is asymmetric."""
    from core.xai.evaluation import proportion_ci
    from core.xai.localisation import summarise

    assert [name for name, spec in LOCALISATION.items() if spec.binary] == ["pointing_hit"]
    records = [{"file": f"f{i}", "class": "glioma", "label": 0, "flagged": False, "unseen": i < 10, "area": 0.02,
                "maps": {"m": {"energy_pointing": 0.1, "pointing_hit": float(i < 2), "rank_accuracy": 0.1,
                               "seconds": 1.0}}} for i in range(100)]
    hit = summarise(records, ["glioma", "notumor"])["all"]["maps"]["m"]["pointing_hit"]["all"]
    assert hit["mean"] == pytest.approx(0.02) and hit["n"] == 100
    assert hit["ci95"] == pytest.approx([0.0055, 0.0700], abs=5e-4)  # Wilson 95% for 2/100
    energy = summarise(records, ["glioma"])["all"]["maps"]["m"]["energy_pointing"]["all"]
    assert energy["ci95"] == pytest.approx([0.1, 0.1])  # continuous metrics keep the t-interval
    assert proportion_ci([1.0, float("nan"), None, 0.0])["n"] == 2
    with pytest.raises(ValueError):
        proportion_ci([0.5])


def test_energy_pointing_game_by_hand():
    mask = _square(10, 0, 0, 5)                       # 25 of 100 pixels
    saliency = np.zeros((10, 10), np.float32)
    saliency[0, 0], saliency[9, 9] = 3.0, 1.0         # 3 of 4 units of mass inside
    saliency[5, 5] = -10.0                            # negative evidence is not mass
    values = localise_map(saliency, mask)
    assert values["energy_pointing"] == pytest.approx(0.75)
    assert localise_map(uniform_map(10), mask)["energy_pointing"] == pytest.approx(0.25)  # the floor = area
    assert np.isnan(localise_map(-np.ones((10, 10)), mask)["energy_pointing"])


def _tolerance(pixels: int) -> dict:
    """The pointing game's options (the one localisation metric with an option)."""
    return {"pointing_hit": {"tolerance": pixels}}


def test_pointing_game_tolerance_and_plateaus():
    mask = _square(224, 100, 100, 10)
    saliency = np.zeros((224, 224), np.float32)
    saliency[100, 112] = 1.0                          # 3 px right of the mask's edge (col 109)
    assert localise_map(saliency, mask, ["pointing_hit"], options=_tolerance(0))["pointing_hit"] == 0.0
    assert localise_map(saliency, mask, ["pointing_hit"], options=_tolerance(3))["pointing_hit"] == 1.0
    plateau = np.zeros((224, 224), np.float32)
    plateau[0:120, 0:120] = 1.0                       # a flat maximum whose first raster pixel (0, 0) misses;
    assert localise_map(plateau, mask, ["pointing_hit"], options=_tolerance(0))["pointing_hit"] == 0.0  # centre (59.5, 59.5)
    plateau[:] = 0
    plateau[90:130, 90:130] = 1.0                     # centred on the mask: its centre is a hit
    assert localise_map(plateau, mask, ["pointing_hit"], options=_tolerance(0))["pointing_hit"] == 1.0


def test_rank_accuracy_by_hand():
    mask = _square(4, 0, 0, 2)                        # K = 4
    saliency = np.arange(16, dtype=np.float32)[::-1].reshape(4, 4)  # top 4 = first row
    assert localise_map(saliency, mask, ["rank_accuracy"])["rank_accuracy"] == pytest.approx(0.5)
    assert localise_map(mask.astype(np.float32), mask, ["rank_accuracy"])["rank_accuracy"] == 1.0


def test_localise_map_rejects_bad_input():
    with pytest.raises(ExplainError, match="does not match the mask"):
        localise_map(np.zeros((4, 4)), np.zeros((5, 5), bool))
    with pytest.raises(ExplainError, match="unknown localisation metric"):
        localise_map(np.zeros((4, 4)), np.zeros((4, 4), bool), ["nosuch"])
    with pytest.raises(ExplainError, match="tolerance"):
        localise_map(np.zeros((4, 4)), np.zeros((4, 4), bool), options=_tolerance(-1))


def test_floors_on_a_central_and_an_offcentre_mask():
    central, corner = _square(64, 28, 28, 8), _square(64, 2, 2, 8)
    gauss = gaussian_map(64)
    assert localise_map(gauss, central)["energy_pointing"] > central.mean() > 0
    assert localise_map(gauss, corner)["energy_pointing"] < corner.mean()
    rnd = np.mean([localise_map(random_map(64, s), central)["energy_pointing"] for s in range(5)])
    assert rnd == pytest.approx(central.mean(), abs=0.01)


def test_imputation_fills_holes_from_their_border():
    image = np.tile(np.linspace(0, 255, 16, dtype=np.float32)[None, :, None], (16, 1, 3))  # a horizontal ramp
    removed = _square(16, 4, 4, 6)
    filled = noisy_linear_imputation(image, removed, 0.0, np.random.default_rng(0))
    assert np.allclose(filled[~removed], image[~removed])
    assert np.allclose(filled, image, atol=1e-6)       # a linear ramp is its own neighbour average
    noisy = noisy_linear_imputation(image, removed, 2.55, np.random.default_rng(0))
    assert 1.5 < np.std(noisy[removed] - image[removed]) < 3.5


def test_road_prefers_the_faithful_map():
    model = region_model()
    image = region_image()
    faithful = region_mask().astype(np.float32)
    scores = {name: evaluate_map(model, image, m, 0, seed=0, metrics=["road_morf", "road_lerf"])
              for name, m in {"faithful": faithful, "random": random_map(SIZE, 1), "inverse": 1 - faithful}.items()}
    assert scores["faithful"]["road_morf"].value < scores["random"]["road_morf"].value
    assert scores["faithful"]["road_lerf"].value > scores["random"]["road_lerf"].value
    assert scores["inverse"]["road_morf"].value > scores["faithful"]["road_morf"].value
    again = evaluate_map(model, image, faithful, 0, seed=0, metrics=["road_morf"])["road_morf"].value
    assert again == scores["faithful"]["road_morf"].value   # seeded noise: deterministic
    with pytest.raises(ExplainError, match="fractions"):
        evaluate_map(model, image, faithful, 0, metrics=["road_morf"], options={"road_morf": {"fractions": (0.0, 0.5)}})


def test_saturation_is_detected_and_reported():
    assert saturation(np.array([0.98, 0.99, 1.0]), True, 0.9)[0]           # blurred scan already scores 0.98
    assert not saturation(np.array([0.2, 0.6, 1.0]), True, 0.9)[0]
    assert saturation(np.array([1.0, 0.99, 0.95]), False, 0.9)[0]          # black image still scores 0.95
    flagged, note = saturation(np.array([1.0, 0.5, 0.1]), False, 0.9)
    assert not flagged and note == ""
    model = region_model()
    blank = region_image(blob=False)
    result = evaluate_map(model, blank, np.ones((SIZE, SIZE)), 1, metrics=["insertion_auc"])["insertion_auc"]
    assert result.saturated == (result.curve[1][0] >= 0.9 * result.curve[1][-1]) and isinstance(result.note, str)


def test_agreement_and_outside_head():
    a = gaussian_map(64)
    b = np.roll(a, 30, axis=1)
    result = agreement({"x": a, "y": a.copy(), "z": b})
    assert result.pairs[("x", "y")]["top_iou"] == 1.0 and result.pairs[("x", "y")]["spearman"] == pytest.approx(1.0)
    assert result.pairs[("x", "z")]["top_iou"] == 0.0 and ("x", "z") in result.disagreeing
    assert result.score == pytest.approx(1 / 3)
    assert top_iou(a, a, 0.05) == 1.0
    yy, xx = np.mgrid[:64, :64]
    scan = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 20 ** 2, 120.0, 3.0)
    scan[28:36, 28:36] = 10.0                          # a dark ventricle stays inside the head
    image = np.repeat(scan[..., None], 3, axis=2).astype(np.float32)
    head = head_mask(image)
    assert head[32, 32] and not head[2, 2] and head.mean() == pytest.approx(np.pi * 400 / 4096, abs=0.03)
    corner = np.zeros((64, 64), np.float32)
    corner[:8, :8] = 1
    assert outside_share(corner, head) == 1.0
    assert agreement({"c": corner, "g": a}, image).mostly_outside == ["c"]


def _real_masks():
    if not (MASKS / "index.csv").is_file() or not (REAL_DATA / "Testing").is_dir():
        pytest.skip(f"real data or masks not found at {REAL_DATA} / {MASKS}")
    from core.data.masks import load_mask_index

    return load_mask_index(MASKS)


@pytest.mark.data
def test_mask_loader_on_the_real_index():
    masks = _real_masks()
    testing = masks.select("Testing")
    assert len(testing) == 906 and len(masks.select("Testing", flagged=False)) == 906 - sum(r.flagged for r in testing)
    unseen = [r for r in testing if masks.unseen(r)]
    assert 250 < len(unseen) < 400                    # the README: 587 of 906 share a source slice with Training
    row = masks.for_file("Testing/pituitary/" + next(r for r in testing if r.class_name == "pituitary").stem + ".jpg")
    full, small = masks.load(row), masks.load(row, 128)
    assert full.shape == (224, 224) and small.shape == (128, 128) and full.dtype == bool
    assert abs(full.mean() - row.area_fraction) < 0.002 and abs(small.mean() - full.mean()) < 0.01
    assert masks.for_name(row.stem + ".jpg") is row and masks.for_name("upload.jpg") is None


@pytest.mark.data
def test_localisation_metrics_match_quantus_on_real_scans():
    """Our energy, hit and rank accuracy against quantus 0.6 on five real test scans and three maps each
    (maps without ties: with ties the rank order is a convention, ours is stable, Quantus' quicksort is not)."""
    quantus = pytest.importorskip("quantus")
    import cv2

    from core.xai.metrics.localisation.pointing_game import dilate

    masks = _real_masks()
    rows = [r for r in masks.select("Testing", flagged=False)][::180][:5]
    rng = np.random.default_rng(0)
    a_batch, s_batch, ours = [], [], []
    for row in rows:
        mask = masks.load(row)
        blurred_mask = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 6) + 0.05 * rng.random(mask.shape)
        smooth_central = gaussian_map(224) + 1e-4 * rng.random((224, 224)).astype(np.float32)
        for saliency in (smooth_central, random_map(224, int(rng.integers(100))), blurred_mask.astype(np.float32)):
            a_batch.append(saliency)
            s_batch.append(mask)
            ours.append(localise_map(saliency, mask, options=_tolerance(0)))
    x = np.zeros((len(a_batch), 1, 224, 224), np.float32)
    a = np.stack(a_batch)[:, None]
    s = np.stack(s_batch)[:, None].astype(float)
    y = np.zeros(len(a_batch), int)
    kwargs = {"disable_warnings": True, "display_progressbar": False}
    common = {"model": None, "x_batch": x, "y_batch": y, "a_batch": a, "s_batch": s, "channel_first": True}
    mass = quantus.RelevanceMassAccuracy(abs=False, normalise=False, **kwargs)(**common)
    rank = quantus.RelevanceRankAccuracy(abs=False, normalise=False, **kwargs)(**common)
    hit = quantus.PointingGame(abs=False, normalise=False, **kwargs)(**common)
    assert np.allclose([o["energy_pointing"] for o in ours], mass, atol=1e-6)
    assert np.allclose([o["rank_accuracy"] for o in ours], rank, atol=1e-6)
    assert [o["pointing_hit"] for o in ours] == [float(h) for h in hit]
    dilated = np.stack([dilate(m, 3) for m in s_batch])[:, None].astype(float)
    hit3 = quantus.PointingGame(abs=False, normalise=False, **kwargs)(**{**common, "s_batch": dilated})
    assert [localise_map(m, k, ["pointing_hit"])["pointing_hit"] for m, k in zip(a_batch, s_batch)] == \
        [float(h) for h in hit3]


@pytest.mark.data
def test_road_imputation_matches_quantus_on_a_real_scan():
    quantus_perturb = pytest.importorskip("quantus.functions.perturb_func")
    from core.io.images import load_for_model

    masks = _real_masks()
    row = masks.select("Testing")[0]
    image = load_for_model(REAL_DATA / row.file, 64)
    order = np.argsort(-gaussian_map(64).ravel(), kind="stable")
    for fraction in (0.1, 0.5, 0.9):
        removed = np.zeros(64 * 64, bool)
        removed[order[:int(fraction * 64 * 64)]] = True
        ours = noisy_linear_imputation(image, removed.reshape(64, 64), 0.0, np.random.default_rng(0))
        theirs = quantus_perturb.noisy_linear_imputation(np.moveaxis(image, -1, 0).astype(np.float64),
                                                         np.sort(np.flatnonzero(removed)), noise=0.0)
        assert np.allclose(ours, np.moveaxis(theirs, 0, -1), atol=1e-3)
