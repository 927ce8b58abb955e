"""Knowing when not to answer: the input gate's layers, learned scores, temperature scaling, conformal sets, the
fitting command, the CLI contract and the app's wording. Tiny synthetic data and the tiny model only."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.errors import CalibrationError, ImageDecodeError
from core.evaluation import trust_fit
from core.evaluation.calibration import calibration_metrics, conformal_metrics, ece, ood_metrics
from core.io.images import dicom_modality, non_finite_fraction, read_image
from core.model.assessment import Assessment, State
from core.model.gate import check_metadata, check_pixels
from core.model.gate.scores import SCORES, get_score
from core.model.inference import classify, predict_proba, predict_with_features
from core.model.trust import NOT_CALIBRATED, calibrated_proba, conformal_predictor, load_trust, prediction_sets
from tests.synthetic import synthetic_scan, write_dataset


def _pydicom_file(name: str) -> Path:
    import pydicom.data

    return next((Path(pydicom.data.__file__).parent / "test_files").rglob(name))


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image[:, :, ::-1])[1].tobytes()


# --- gate layers 1 and 2 -------------------------------------------------------------------------------------

def test_dicom_modality_is_read_from_the_header():
    assert dicom_modality(_pydicom_file("CT_small.dcm")) == "CT"
    assert dicom_modality(_pydicom_file("MR_small.dcm")) == "MR"
    assert dicom_modality(_png(synthetic_scan("glioma", 48, np.random.default_rng(0)))) is None
    assert dicom_modality(b"") is None


@pytest.mark.parametrize("code, words", [("CT", "a CT scan"), ("US", "an ultrasound"), ("CR", "an X-ray"),
                                         ("DX", "an X-ray"), ("NM", "nuclear-medicine"), ("SEG", "segmentation"),
                                         ("RTDOSE", "radiotherapy"), ("OT", "unspecified"), ("ZZ", "'ZZ'")])
def test_metadata_layer_refuses_every_modality_but_mr_and_says_what_it_is(code, words):
    refusal = check_metadata(code)
    assert refusal.layer == "metadata" and words in refusal.reason and "not an MRI" in refusal.reason
    assert check_metadata("MR") is None and check_metadata(None) is None


def test_pixel_rules_refuse_blank_colour_and_nan_images_and_pass_a_scan():
    rng = np.random.default_rng(0)
    assert check_pixels(synthetic_scan("meningioma", 64, rng)) is None
    assert check_pixels(np.zeros((64, 64, 3), np.uint8)).layer == "image:no_variation"
    assert check_pixels(np.full((64, 64, 3), 127, np.uint8)).layer == "image:no_variation"
    colour = np.zeros((64, 64, 3), np.uint8)
    colour[..., 0], colour[..., 1] = 200, np.linspace(0, 255, 64).astype(np.uint8)[None]
    assert check_pixels(colour).layer == "image:colour"
    nan = np.full((32, 32), np.nan, np.float32)
    nan[:8] = np.linspace(0, 1, 32)
    data = cv2.imencode(".tiff", nan)[1].tobytes()
    assert non_finite_fraction(data) == pytest.approx(0.75)
    refusal = check_pixels(read_image(data), non_finite_fraction(data))
    assert refusal.layer == "image:non_finite" and "NaN" in refusal.reason


# --- learned scores, temperature, conformal ---------------------------------------------------------------------

def _features(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    labels = rng.integers(0, 3, n)
    centres = np.eye(3, 8) * 4
    penultimate = centres[labels] + rng.normal(0, 1, (n, 8)) + shift
    return {"penultimate": penultimate, "logits": penultimate[:, :3] * (1 - shift / 3),
            "stage0": rng.normal(shift, 1, (n, 5)), "stage1": penultimate[:, :4]}, labels


@pytest.mark.parametrize("name", sorted(SCORES))
def test_every_learned_score_ranks_shifted_features_as_less_like_training(name):
    rng = np.random.default_rng(1)
    train, labels = _features(rng, 400, 0.0)
    inside, _ = _features(rng, 200, 0.0)
    outside, _ = _features(rng, 200, 3.0)
    negatives, _ = _features(rng, 200, 2.5)
    score = get_score(name)
    params = score.fit(train, labels, negatives if score.uses_negatives else None, seed=0)
    assert all(isinstance(v, np.ndarray) for v in params.values())
    auroc = roc_auc_score(np.r_[np.zeros(200), np.ones(200)], np.r_[score.score(inside, params),
                                                                    score.score(outside, params)])
    assert auroc > 0.75, (name, auroc)


def test_temperature_scaling_recovers_the_temperature_and_lowers_ece_and_nll():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 4))
    labels = (rng.random((4000, 1)) > calibrated_proba(logits, 2.0).cumsum(axis=1)).sum(axis=1)
    t = trust_fit.fit_temperature(logits, labels)
    assert t == pytest.approx(2.0, rel=0.1)
    before = calibration_metrics(calibrated_proba(logits, 1.0), labels, list("abcd"))
    after = calibration_metrics(calibrated_proba(logits, t), labels, list("abcd"))
    assert after["ece"] < 0.03 < before["ece"] and after["nll"] < before["nll"] and after["brier"] < before["brier"]
    assert set(after["per_class"]["a"]) == {"n", "ece", "brier", "nll"} and after["reliability"]


def test_ece_of_a_known_example():
    confidence = np.array([0.9, 0.9, 0.6, 0.6])
    correct = np.array([1, 1, 1, 0.0])
    assert ece(confidence, correct, bins=15) == pytest.approx(0.5 * 0.1 + 0.5 * 0.1)


def test_class_conditional_conformal_sets_cover_every_class_at_the_nominal_level():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (6000, 4))
    logits[:, 3] -= 1.5  # a harder, rarer class: Mondrian coverage must hold for it too
    proba = calibrated_proba(logits, 1.0)
    labels = (rng.random((6000, 1)) > proba.cumsum(axis=1)).sum(axis=1)
    predictor = conformal_predictor(proba[:3000], labels[:3000])
    sets = prediction_sets(predictor, proba[3000:], 0.9)
    report = conformal_metrics(sets, proba[3000:], labels[3000:], list("abcd"))
    for name, row in report["per_class"].items():
        assert row["coverage"] >= 0.87, (name, row)
    assert sets.dtype == bool and 1 <= report["mean_set_size"] < 4


# --- fitting, the CLI contract, evaluation ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the tiny model folder, fitted on 40 synthetic training scans per class."""
    import shutil

    data = write_dataset(tmp_path_factory.mktemp("trustdata"), n_train=40, n_test=8, size=48, seed=3)
    folder = tmp_path_factory.mktemp("fitted") / "model"
    shutil.copytree(tiny_model_dir, folder)
    from core.model.factory import load_model

    model, card = load_model(folder)
    mp = pytest.MonkeyPatch()
    mp.setattr(trust_fit, "MIN_TRAIN_PER_CLASS", 10)
    mp.setattr(trust_fit, "MIN_VALIDATION_PER_CLASS", 3)
    try:
        trust_fit.fit_trust(model, card, data, folder, per_class=30, per_family=15, seed=0)
    finally:
        mp.undo()
    return folder, data


def test_fitting_writes_the_folder_and_chooses_a_score_by_measurement(fitted_dir):
    folder, _ = fitted_dir
    config = json.loads((folder / "trust.json").read_text())
    assert (folder / "trust.npz").is_file()
    assert config["gate_score"] in SCORES and set(config["report"]["gate_selection"]) == set(SCORES)
    best = config["report"]["gate_selection"][config["gate_score"]]
    assert best["mean_refused"] == max(r["mean_refused"] for r in config["report"]["gate_selection"].values())
    assert set(best["per_family"]) == {"photos", "medical_other", "synthetic", "brain_parts"}
    assert config["temperature"] > 0 and config["class_names"] == ["glioma", "meningioma", "notumor", "pituitary"]


def test_too_few_scans_is_a_user_error(tiny_model, tiny_dataset, tmp_path):
    model, card = tiny_model
    with pytest.raises(CalibrationError, match="too few"):
        trust_fit.fit_trust(model, card, tiny_dataset, tmp_path)


def test_probabilities_of_the_feature_pass_equal_predict_proba(tiny_model):
    model, _ = tiny_model
    images = np.stack([synthetic_scan(c, 32, np.random.default_rng(i)) for i, c in enumerate(("glioma", "notumor"))])
    proba, features = predict_with_features(model, images.astype(np.float32))
    np.testing.assert_allclose(proba, predict_proba(model, images.astype(np.float32)), atol=1e-6)
    np.testing.assert_allclose(calibrated_proba(features["logits"], 1.0), proba, atol=1e-5)
    assert {"logits", "penultimate", "stage0", "stage1"} <= set(features)


def test_classify_with_trust_gives_calibrated_sets_and_refuses_a_ct(fitted_dir, tiny_model):
    folder, data = fitted_dir
    model, card = tiny_model
    trust = load_trust(folder, card.class_names)
    scan = next((data / "Testing" / "glioma").iterdir())
    result = classify(model, card, scan, trust=trust)
    assert result.calibrated_model and result.ood_score is not None and isinstance(result.prediction_set, tuple)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    ct = classify(model, card, _pydicom_file("CT_small.dcm"), trust=trust)
    assert ct.refused and ct.refusal_layer == "metadata" and "CT scan" in ct.refusal
    out = ct.to_dict()
    assert out["predicted_class"] is None and out["prediction_set"] == [] and out["in_distribution"] is False


def _cli(capsys: pytest.CaptureFixture, *args: str) -> SimpleNamespace:
    """`python -m core ARGS` in this process (the model loads in a second instead of a fresh TensorFlow import)."""
    from core.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def test_predict_json_contract_with_and_without_calibration(fitted_dir, tiny_model_dir, tmp_path, capsys):
    folder, data = fitted_dir
    scan = next((data / "Testing" / "pituitary").iterdir())
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((64, 64), np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    ct = str(_pydicom_file("CT_small.dcm"))
    run = _cli(capsys, "predict", str(scan), str(black), ct, "--json", "--model", str(folder))
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    keys = {"in_distribution", "ood_score", "refusal", "prediction_set", "confidence", "predicted_class"}
    assert all(keys <= set(r) for r in rows)
    assert rows[0]["refusal"] is None or rows[0]["predicted_class"] is None
    assert isinstance(rows[0]["ood_score"], float)
    assert [r["predicted_class"] for r in rows[1:]] == [None, None] and rows[1]["prediction_set"] == []
    assert "blank" in rows[1]["refusal"] and "CT scan" in rows[2]["refusal"]
    failed = _cli(capsys, "predict", str(broken), "--json", "--model", str(folder))
    assert failed.returncode == 1 and "error:" in failed.stderr and failed.stdout == ""
    plain = _cli(capsys, "predict", str(scan), "--json", "--model", str(tiny_model_dir))
    assert plain.returncode == 0 and NOT_CALIBRATED.split(":")[0] in plain.stderr
    row = json.loads(plain.stdout)
    assert row["calibrated"] is False and row["note"] == "not calibrated" and row["predicted_class"] is not None


def test_evaluate_reports_calibration_sets_and_the_gate_on_an_external_folder(fitted_dir, tiny_model, tmp_path):
    from core.evaluation.evaluate import evaluate_loaded_model

    folder, data = fitted_dir
    model, card = tiny_model
    external = tmp_path / "ext" / "far"
    external.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["file,label,source,notes"]
    for i in range(6):
        cv2.imwrite(str(external / f"noise{i}.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
        rows.append(f"noise{i}.png,far_ood,synthetic,")
    (external / "labels.csv").write_text("\n".join(rows) + "\n")
    results = evaluate_loaded_model(model, card, str(data), trust=load_trust(folder, card.class_names),
                                    external=str(tmp_path / "ext"))
    trust = results["trust"]
    assert {"calibration_before", "calibration_after", "conformal"} <= set(trust["test"])
    assert trust["test"]["conformal"]["n"] == 32 and 0 <= trust["test_false_refusal"]["rate"] <= 1
    assert set(trust["external"]) == {"far"} and 0 <= trust["external"]["far"]["auroc"] <= 1
    assert "fpr_at_95tpr" in trust["external"]["far"] and trust["risk_coverage"]["conformal"]


def test_undecodable_non_mr_dicom_is_still_refused_not_an_error(tiny_model, tmp_path):
    import pydicom

    ds = pydicom.dcmread(_pydicom_file("CT_small.dcm"))
    ds.PixelData = b"\x00" * 10  # truncated pixel data
    path = tmp_path / "broken_ct.dcm"
    ds.save_as(path)
    model, card = tiny_model
    result = classify(model, card, path)
    assert result.refused and result.probabilities == {}
    mr = pydicom.dcmread(_pydicom_file("MR_small.dcm"))
    mr.PixelData = b"\x00" * 10
    mr.save_as(tmp_path / "broken_mr.dcm")
    with pytest.raises(ImageDecodeError):
        classify(model, card, tmp_path / "broken_mr.dcm")


# --- the app's wording ---------------------------------------------------------------------------------------

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _prediction(**kw) -> Assessment:
    base = dict(file="x.png", class_names=CLASSES, calibrated=(0.6, 0.35, 0.03, 0.02), raw=(0.5, 0.4, 0.05, 0.05),
                calibrated_model=True, prediction_set=("glioma", "meningioma"), ood_score=0.1)
    base.update(kw)
    return Assessment(**base)


def test_one_state_machine_words_every_state_the_same_way():
    several = _prediction()
    assert several.state is State.SEVERAL and several.answer is None
    assert several.headline == "Uncertain: Glioma or Meningioma"
    assert "cannot tell glioma or meningioma apart" in several.warnings[0]
    assert _prediction(prediction_set=("glioma",)).state is State.LOW_CONFIDENCE  # one class, 60% < 70%
    assert "below 70%" in _prediction(prediction_set=("glioma",)).warnings[0]
    confident = _prediction(calibrated=(0.9, 0.05, 0.03, 0.02), prediction_set=("glioma",))
    assert confident.state is State.CONFIDENT and confident.warnings == () and confident.headline == "Glioma"
    assert _prediction(calibrated=(0.7, 0.2, 0.05, 0.05), prediction_set=("glioma",)).state is State.CONFIDENT
    other = _prediction(calibrated=(0.9, 0.05, 0.03, 0.02), prediction_set=("meningioma",))
    assert other.state is State.SEVERAL and other.headline == "Uncertain: Glioma or Meningioma"
    empty = _prediction(calibrated=(0.943, 0.03, 0.017, 0.01), prediction_set=())
    assert empty.state is State.NO_CLASS and empty.headline == "Uncertain: no class is plausible"
    assert empty.answer is None and empty.to_dict()["predicted_class"] is None
    assert empty.to_dict()["top_class"] == "glioma"
    uncalibrated = _prediction(calibrated_model=False, prediction_set=None)
    assert uncalibrated.state is State.LOW_CONFIDENCE and "not calibrated" in uncalibrated.warnings[-1]
    refused = _prediction(refusal="This looks like a CT scan, not an MRI.", refusal_layer="metadata")
    assert refused.state is State.REFUSED and refused.refusal_title == "Not an MRI"
    assert refused.probabilities == {} and refused.predicted is None and refused.confidence is None
    record = refused.to_dict()
    assert record["probabilities"] == {} and record["prediction_set"] == [] and record["predicted_class"] is None
    assert "file" not in refused.audit_record() and refused.audit_record()["state"] == "refused"


def test_app_wording_flags_multi_class_sets_refusals_and_wrong_samples():
    from ui.presentation import predictions_display, predictions_frame
    from ui.trust_view import answer_banner, sample_disagreement

    refused = _prediction(refusal="This looks like a CT scan, not an MRI.", refusal_layer="metadata")
    assert answer_banner(refused) == ("error", "Not an MRI: not classified", "This looks like a CT scan, not an MRI.")
    kind, headline, subline = answer_banner(_prediction())
    assert (kind, headline) == ("warning", "Uncertain: Glioma or Meningioma") and "for reference only" in subline
    assert "known class is Meningioma" in sample_disagreement("meningioma", _prediction())
    assert sample_disagreement("glioma", _prediction()) is None
    frame = predictions_frame([_prediction(), refused])
    assert {"assessment", "answer", "ood score", "refusal", "prediction set"} <= set(frame.columns)
    assert list(frame["answer"]) == ["Uncertain: Glioma or Meningioma", "Not an MRI: not classified"]
    assert list(frame["prediction set"]) == ["Glioma, Meningioma", ""]
    shown = predictions_display(frame)
    assert list(shown["p(Glioma)"]) == ["60.0%", ""]  # the refused row shows no probability


def test_ood_metrics_auroc_fpr_and_rule_refusals():
    ids, ood = np.arange(100.0), np.arange(50.0, 150.0)
    out = ood_metrics(ids, ood, np.zeros(100, bool), ood > 139)
    assert out["fpr_at_95tpr"] == pytest.approx(0.45)
    assert out["auroc"] == pytest.approx(roc_auc_score(np.r_[np.zeros(100), np.ones(100)], np.r_[ids, ood]), abs=1e-4)
    assert out["refused"] == pytest.approx(0.10) and out["auroc_ci95"][0] <= out["auroc"] <= out["auroc_ci95"][1]
    # a rule refusal without a learned score (a CT refused by its header) counts as the most out-of-distribution
    ruled = ood_metrics(ids, np.full(10, np.nan), np.zeros(100, bool), np.ones(10, bool))
    assert ruled["auroc"] == 1.0 and ruled["fpr_at_95tpr"] == 0.0


def test_classify_page_shows_why_a_scan_is_refused_and_the_set_of_an_accepted_one(fitted_dir, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from ui import state

    folder, data = fitted_dir
    monkeypatch.setenv("BRAINSCAN_MODEL", str(folder))
    monkeypatch.setenv("BRAINSCAN_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=180)
    at.run()
    ct = _pydicom_file("CT_small.dcm").read_bytes()
    at.file_uploader(key=state.UPLOADS).set_value(("chest.dcm", ct, "application/dicom")).run()
    assert not at.exception, at.exception
    assert any("Not an MRI" in e.value and "CT scan" in e.value for e in at.error)
    assert not any("Predicted class" in c.value for c in at.caption)
    scan = next((data / "Testing" / "glioma").iterdir())
    at.file_uploader(key=state.UPLOADS).set_value([("scan.png", scan.read_bytes(), "image/png"),
                                                   ("chest.dcm", ct, "application/dicom")]).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"assessment", "refusal", "prediction set", "ood score"} <= set(table.columns)
    assert list(table["assessment"])[1] == "Not classified (refused by the input gate)"
    assert table["p(Glioma)"].iloc[1] in ("", None)


def test_metrics_tables_name_each_measure_in_plain_words_first():
    from core.model.trust_records import TrustRecord
    from ui.trust_view import calibration_frame, conformal_frame, gate_frame

    calib = {"n": 10, "ece": 0.1, "nll": 0.3, "brier": 0.2, "per_class": {}}
    conformal = {"n": 10, "coverage": 0.95, "coverage_ci95": [0.7, 0.99], "mean_set_size": 1.2, "single_share": 0.8,
                 "per_class": {}}
    trust = {"test": {"calibration_before": calib, "calibration_after": {**calib, "ece": 0.05}, "conformal": conformal},
             "test_false_refusal": {"n": 10, "rate": 0.0, "rate_ci95": [0.0, 0.3]},
             "external": {"far_ood": {"n": 5, "refused": 0.8, "refused_ci95": [0.4, 0.96], "auroc": 0.9,
                                      "auroc_ci95": [0.8, 0.95], "fpr_at_95tpr": 0.2}}}
    trust = TrustRecord.from_json(trust)
    frame = calibration_frame(trust)
    assert frame.loc["all scans", "Probability vs reality gap (ECE), after"] == 0.05
    assert "Set holds the true class (coverage)" in conformal_frame(trust).columns
    gate = gate_frame(trust)
    assert gate.loc["far_ood", "Tells the set from Testing scans (AUROC)"] == "0.900 [0.800–0.950]"
