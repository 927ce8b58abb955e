"""End to end on synthetic scans: train -> status/history/card -> evaluate -> predict -> kill -> resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import TrainingConfigError
from core.model.factory import load_model
from core.training import run_files as rf
from core.training.loop import TrainConfig, plan_phases, train
from tests.conftest import REPO
from tests.synthetic import write_dataset

# The synthetic classes differ by blob brightness, which the robust recipe's intensity augmentation (gamma, contrast)
# deliberately blurs: the tiny runs use the specification's geometric augmentation.
TINY = ["--backbone", "TinyCNN", "--weights", "none", "--image-size", "32", "--batch-size", "4",
        "--lr-scratch", "5e-3", "--warmup-epochs", "0", "--patience", "100", "--augment", "spec"]


# Training processes run with TensorFlow's op determinism (TF_DETERMINISTIC_OPS=1 is what
# tf.config.experimental.enable_op_determinism sets) on top of the run's own seed.
DETERMINISTIC = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1"}


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **DETERMINISTIC}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture(scope="module")
def card_dataset(tmp_path_factory) -> Path:
    """The synthetic scans with 24 training scans per class: with --val-fraction 0.25 the best checkpoint is
    chosen on 24 validation scans, not ~4 (on 4, one lucky early epoch at 4/4 used to win and fail the test)."""
    return write_dataset(tmp_path_factory.mktemp("card-data"), n_train=24)


@pytest.fixture(scope="module")
def finished_run(card_dataset: Path, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "run1"
    result = _run(["-m", "train", "--data", str(card_dataset), "--run-dir", str(run_dir), "--epochs-scratch", "20",
                   "--val-fraction", "0.25", *TINY])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_run_folder_has_everything_the_app_polls(finished_run):
    status = rf.read_status(finished_run)
    assert status["state"] == "finished" and status["epoch"] == 20 and status["epochs_total"] == 20
    assert status["eta_seconds"] == 0 and status["model_dir"].endswith("model")
    history = json.loads((finished_run / "history.json").read_text())
    assert [row["global_epoch"] for row in history] == list(range(1, 21))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "phase"} <= set(history[0])
    assert history[-1]["learning_rate"] < history[1]["learning_rate"], "cosine schedule decays"
    checkpoints = [p.name for p in (finished_run / rf.CHECKPOINT_SUBDIR).iterdir()]
    assert len(checkpoints) == 1 and checkpoints[0].startswith(rf.CHECKPOINT_PREFIX), "one published checkpoint"
    last = rf.latest_checkpoint(finished_run / rf.CHECKPOINT_SUBDIR)
    assert {p.name for p in last.iterdir()} == {rf.CHECKPOINT_MODEL, rf.BEST_WEIGHTS, rf.CHECKPOINT_STATE}
    assert rf.read_json(last / rf.CHECKPOINT_STATE)["global_epoch"] == 20
    assert "phase scratch epoch 20/20" in (finished_run / "train.log").read_text()


def test_model_card_records_training_and_evaluation(finished_run):
    model, card = load_model(finished_run / "model")
    assert card.class_names == ["glioma", "meningioma", "notumor", "pituitary"] and card.image_size == 32
    assert card.feature_layer == "top_activation" and model.get_layer(card.feature_layer) is not None
    assert card.training["seed"] == 42 and card.training["epochs_run"] == 20
    assert "from scratch" in " ".join(card.notes)
    assert set(card.training["data_fingerprint"]) == {"train", "validation", "test"}
    ev = card.evaluation
    assert ev["test"]["n"] == 24 and {"validation", "test", "test_leakage_free", "audit"} <= set(ev)
    assert ev["test"]["accuracy"] >= 0.75, "the synthetic classes are easy"


def test_card_command_spells_out_every_option_and_parses_back_to_the_config(finished_run):
    """The card's reproduce command names every recipe option, so a later change of defaults cannot change it."""
    import shlex
    from dataclasses import asdict

    from train.__main__ import parse_args

    _, card = load_model(finished_run / "model")
    command = shlex.split(card.training["reproduce_command"])
    assert command[:3] == ["python", "-m", "train"]
    parsed = vars(parse_args(command[3:]))
    recorded = {k: v for k, v in card.training["config"].items() if k != "command"}
    assert {k: parsed[k] for k in recorded} == recorded
    assert set(recorded) == set(asdict(TrainConfig(data="x"))) - {"command"}
    flags = {part.split("=", 1)[0] for part in command[3:]}
    assert {f"--{k.replace('_', '-')}" for k, v in recorded.items() if v != ""} == flags


def test_cli_evaluate_reproduces_card_and_predict_prints_json(finished_run, card_dataset):
    _, card = load_model(finished_run / "model")
    result = _run(["-m", "core", "evaluate", "--data", str(card_dataset), "--model", str(finished_run / "model"), "--json"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["test"]["accuracy"] == pytest.approx(card.evaluation["test"]["accuracy"])
    scan = sorted((card_dataset / "Testing" / "pituitary").iterdir())[0]
    result = _run(["-m", "core", "predict", str(scan), "--model", str(finished_run / "model"), "--json"])
    row = json.loads(result.stdout.strip().splitlines()[0])
    assert row["file"] == str(scan) and set(row["probabilities"]) == set(card.class_names)
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--model", "/nonexistent/model"], "does not exist"),
    (["NOFILE"], "cannot open file"),
])
def test_cli_predict_errors_are_one_line(finished_run, args, message):
    files = [a for a in args if a == "NOFILE"]
    model = [] if "--model" in args else ["--model", str(finished_run / "model")]
    result = _run(["-m", "core", "predict", *(files or ["x.jpg"]), *model, *[a for a in args if a != "NOFILE"]])
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]        # one line (an uncalibrated model adds a "note:" line)
    assert all(line.startswith(("error:", "note:")) for line in result.stderr.strip().splitlines())


def _start_and_kill(tiny_dataset: Path, run_dir: Path, epochs: int) -> int:
    """Start a training process, SIGKILL it after two epochs; returns the epochs it completed."""
    env = {**os.environ, **DETERMINISTIC}
    proc = subprocess.Popen([sys.executable, "-m", "train", "--data", str(tiny_dataset), "--run-dir", str(run_dir),
                             "--epochs-scratch", str(epochs), "--limit-per-class", "4", *TINY],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(rf.read_json(run_dir / "history.json", [])) < 2 and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(rf.read_json(run_dir / "history.json", []))


def test_killed_run_resumes_where_it_stopped(tiny_dataset, tmp_path):
    run_dir = tmp_path / "killed"
    done_before = _start_and_kill(tiny_dataset, run_dir, 40)
    assert 2 <= done_before < 40
    result = _run(["-m", "train", "--resume", str(run_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    history = rf.read_json(run_dir / "history.json")
    assert [row["global_epoch"] for row in history] == list(range(1, 41)), "no epoch lost or repeated"
    assert rf.read_status(run_dir)["state"] == "finished"
    assert "resuming at phase 0 epoch" in (run_dir / "train.log").read_text()


def _listed_runs(runs: Path) -> list:
    from core.training.registry import list_models

    return [e for e in list_models(runs) if e.source.startswith("run ")]


@pytest.mark.parametrize("point", ["checkpoint:2", "evaluation", "export"])
def test_kill_at_each_dangerous_moment_then_resume(tiny_dataset, tiny_model_dir, tmp_path, monkeypatch, point):
    """SIGKILL (through the test-only BRAINSCAN_TEST_KILL_AT hook) while a checkpoint is half-written, during
    the final evaluation and during the export: nothing half-written is ever listed in the model picker, and
    the resumed run trains every epoch exactly once (the optimiser's step count proves it)."""
    import keras

    monkeypatch.setenv("BRAINSCAN_MODEL", str(tiny_model_dir))
    runs, epochs = tmp_path / "runs", 3
    run_dir = runs / "run"
    env = {**os.environ, **DETERMINISTIC, rf.KILL_AT_ENV: point}
    proc = subprocess.Popen([sys.executable, "-m", "train", "--data", str(tiny_dataset), "--run-dir", str(run_dir),
                             "--epochs-scratch", str(epochs), "--limit-per-class", "4", *TINY],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        assert _listed_runs(runs) == [], "a run is listed before it finished"
        time.sleep(0.05)
    assert proc.wait(10) == -signal.SIGKILL, proc.stderr.read()[-3000:]
    assert _listed_runs(runs) == []
    checkpoint = rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR)
    if point.startswith("checkpoint"):
        assert rf.read_json(checkpoint / rf.CHECKPOINT_STATE)["global_epoch"] == 1, "the half-written one is not used"
        staged = list((run_dir / rf.CHECKPOINT_SUBDIR).glob(rf.STAGING_PREFIX + "*"))
        assert len(staged) == 1 and {p.name for p in staged[0].iterdir()} >= {rf.CHECKPOINT_MODEL}
        assert not (staged[0] / rf.CHECKPOINT_STATE).exists()
    else:
        assert rf.read_json(checkpoint / rf.CHECKPOINT_STATE)["global_epoch"] == epochs
        assert not (run_dir / rf.MODEL_SUBDIR).exists(), "no model folder before evaluation and export finished"
        assert rf.read_status(run_dir)["state"] == "evaluating"

    out = train(TrainConfig(data=""), run_dir, resume=True)
    assert rf.read_status(run_dir)["state"] == "finished"
    assert [e.path for e in _listed_runs(runs)] == [out]
    assert [row["global_epoch"] for row in rf.read_json(run_dir / rf.HISTORY_FILE)] == list(range(1, epochs + 1))
    checkpoint = rf.latest_checkpoint(run_dir / rf.CHECKPOINT_SUBDIR)
    assert [p.name for p in (run_dir / rf.CHECKPOINT_SUBDIR).iterdir()] == [checkpoint.name], "leftovers removed"
    assert not list(run_dir.glob(rf.STAGING_PREFIX + "*"))
    card = load_model(out)[1]
    steps = -(-card.training["split_sizes"]["train"] // 4)
    optimizer_steps = int(keras.saving.load_model(checkpoint / rf.CHECKPOINT_MODEL).optimizer.iterations)
    assert optimizer_steps == steps * epochs, "no epoch trained twice or skipped"
    assert card.evaluation["test"]["n"] == 16


def test_resume_can_shorten_a_cosine_run(tiny_dataset, tmp_path):
    run_dir = tmp_path / "shortened"
    done_before = _start_and_kill(tiny_dataset, run_dir, 200)
    target = done_before + 3
    result = _run(["-m", "train", "--resume", str(run_dir), "--epochs-scratch", str(target)])
    assert result.returncode == 0, result.stderr[-3000:]
    history = rf.read_json(run_dir / "history.json")
    assert len(history) == target and rf.read_status(run_dir)["state"] == "finished"
    assert history[-1]["learning_rate"] < 0.2 * history[done_before - 1]["learning_rate"], "annealed to the new end"
    assert f"now {target} epochs" in (run_dir / "train.log").read_text()
    assert rf.read_json(run_dir / "config.json")["epochs_scratch"] == target


def test_cancel_file_stops_run_and_exports_best(tiny_dataset, tmp_path):
    run_dir = tmp_path / "cancelled"
    (run_dir).mkdir()
    config = TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none", image_size=32,
                         batch_size=8, epochs_scratch=500, limit_per_class=4, patience=1000)
    import threading

    def cancel_after_two_epochs():
        while len(rf.read_json(run_dir / "history.json", [])) < 2:
            time.sleep(0.05)
        rf.request_cancel(run_dir)

    threading.Thread(target=cancel_after_two_epochs, daemon=True).start()
    out = train(config, run_dir)
    status = rf.read_status(run_dir)
    assert status["state"] == "cancelled" and status["global_epoch"] < 500
    assert (out / "model.keras").is_file() and load_model(out)[1].training["cancelled"] is True


@pytest.mark.parametrize("changes, message", [
    ({"backbone": "ResNet50"}, "Unknown backbone"),
    ({"weights": "/no/such/weights.h5"}, "does not exist"),
    ({"epochs_scratch": 0}, "At least one epoch"),
    ({"precision": "int8"}, "precision"),
    ({"mask_weight": -1.0}, "mask_weight must be >= 0"),
    ({"mask_weight": 0.5}, "needs the expert masks"),
])
def test_bad_training_options_are_refused_before_any_work(tmp_path, changes, message):
    config = TrainConfig(data=str(tmp_path), weights="none", **{k: v for k, v in changes.items() if k != "weights"})
    if "weights" in changes:
        config.weights = changes["weights"]
    with pytest.raises(TrainingConfigError, match=message):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()


def test_recipes_follow_the_specification():
    spec = plan_phases(TrainConfig(data="x"))
    assert [(p.name, p.epochs, p.lr, p.trainable, p.optimizer) for p in spec] == [
        ("head", 12, 1e-3, "head", "adamax"), ("finetune", 8, 1e-5, "top30", "adamax")]
    scratch = plan_phases(TrainConfig(data="x", weights="none"))
    assert [(p.trainable, p.schedule) for p in scratch] == [("all", "cosine")]


def test_same_seed_twice_gives_identical_weights(tiny_dataset, tmp_path):
    """Two training processes with the same seed and op determinism (augmentation included) end bit-identical."""
    weights = []
    for name in ("a", "b"):
        result = _run(["-m", "train", "--data", str(tiny_dataset), "--run-dir", str(tmp_path / name), "--seed", "7",
                       "--epochs-scratch", "2", "--limit-per-class", "4", *TINY])
        assert result.returncode == 0, result.stderr[-3000:]
        weights.append(load_model(tmp_path / name / "model")[0].get_weights())
    assert len(weights[0]) == len(weights[1])
    for a, b in zip(*weights):
        assert np.array_equal(a, b), "same seed, same data, same machine: identical weights"
