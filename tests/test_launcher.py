"""core.training.launcher: command line, lock file (one active run, stale locks), status of dead runs, cancel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import TrainingConfigError
from core.training import launcher
from core.training import run_files as rf
from core.training.loop import TrainConfig


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_runs_root_and_data_dir_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINSCAN_RUNS", str(tmp_path / "r"))
    monkeypatch.setenv("BRAINSCAN_DATA", str(tmp_path / "d"))
    assert launcher.runs_root() == tmp_path / "r"
    assert launcher.default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("BRAINSCAN_RUNS")
    assert launcher.runs_root() == launcher.REPO / "runs"


def test_train_command_scratch_and_pretrained(tmp_path):
    from train.__main__ import parse_args

    config = TrainConfig(data="D", backbone="TinyCNN", weights="none", image_size=32, epochs_scratch=2,
                         lr_scratch=0.01, limit_per_class=5, name="my run")
    scratch = launcher.train_command(config, tmp_path)
    assert scratch[1:3] == ["-m", "train"]
    assert "--epochs-head" not in scratch
    parsed = parse_args(scratch[3:])
    assert (parsed.data, parsed.run_dir, parsed.backbone, parsed.weights) == ("D", str(tmp_path), "TinyCNN", "none")
    assert (parsed.image_size, parsed.epochs_scratch, parsed.lr_scratch) == (32, 2, 0.01)
    assert (parsed.limit_per_class, parsed.name) == (5, "my run")
    pretrained = launcher.train_command(TrainConfig(data="D", weights="imagenet", epochs_head=3, epochs_finetune=1,
                                                    lr_finetune=2e-5), tmp_path)
    assert "--epochs-scratch" not in pretrained and "--limit-per-class" not in pretrained
    parsed = parse_args(pretrained[3:])
    assert (parsed.epochs_head, parsed.epochs_finetune, parsed.lr_finetune) == (3, 1, 2e-5)


def test_check_options_rejects_bad_data_and_tiny_pretrained(tiny_dataset, tmp_path):
    with pytest.raises(TrainingConfigError, match="Training/ and Testing/"):
        launcher.check_options(TrainConfig(data=str(tmp_path)))
    with pytest.raises(TrainingConfigError, match="TinyCNN"):
        launcher.check_options(TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="imagenet"))
    with pytest.raises(TrainingConfigError, match="image_size"):
        launcher.check_options(TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none", image_size=16))
    launcher.check_options(TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none"))


def test_pid_alive():
    assert launcher.pid_alive(os.getpid())
    assert not launcher.pid_alive(_dead_pid())
    assert not launcher.pid_alive(0)


def test_stale_lock_is_removed(tmp_path):
    (tmp_path / launcher.LOCK_FILE).write_text(json.dumps({"run_dir": str(tmp_path / "x"), "pid": _dead_pid()}))
    assert launcher.active_run(tmp_path) is None
    assert not (tmp_path / launcher.LOCK_FILE).exists()


def test_one_active_run_at_a_time_and_lock_released_after_exit(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "train_command",
                        lambda config, run_dir: [sys.executable, "-c", "import time; print('hi'); time.sleep(1.5)"])
    options = TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none")
    lock = launcher.start_run(options, tmp_path)
    assert launcher.active_run(tmp_path)["pid"] == lock["pid"]
    assert json.loads((Path(lock["run_dir"]) / launcher.LAUNCH_FILE).read_text())["pid"] == lock["pid"]
    with pytest.raises(TrainingConfigError, match="already active"):
        launcher.start_run(options, tmp_path)
    deadline = time.time() + 20
    while launcher.active_run(tmp_path) and time.time() < deadline:
        time.sleep(0.2)
    assert launcher.active_run(tmp_path) is None
    assert "hi" in launcher.process_log_tail(lock["run_dir"])
    status = launcher.run_status(lock["run_dir"])
    assert status["state"] == "failed" and "ended unexpectedly" in status["error"]
    assert launcher.latest_run(tmp_path) == Path(lock["run_dir"])


def test_run_status_keeps_final_states_and_flags_dead_runs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rf.write_json(run / rf.STATUS_FILE, {"state": "finished", "pid": _dead_pid()})
    assert launcher.run_status(run)["state"] == "finished"
    rf.write_json(run / rf.STATUS_FILE, {"state": "running", "pid": _dead_pid(), "epoch": 3})
    status = launcher.run_status(run)
    assert status["state"] == "failed" and status["epoch"] == 3


def test_cancel_run_writes_the_cancel_request(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / launcher.LOCK_FILE).write_text(json.dumps({"run_dir": str(run), "pid": os.getpid()}))
    assert launcher.cancel_run(tmp_path) == run
    assert (run / rf.CANCEL_FILE).exists()
    (tmp_path / launcher.LOCK_FILE).unlink()
    assert launcher.cancel_run(tmp_path) is None


def test_list_runs_newest_first(tmp_path):
    for i, name in enumerate(("a", "b")):
        (tmp_path / name).mkdir()
        rf.write_json(tmp_path / name / rf.CONFIG_FILE, {})
        stamp = time.time() - 100 + i * 10
        os.utime(tmp_path / name, (stamp, stamp))
    (tmp_path / "not-a-run").mkdir()
    assert [p.name for p in launcher.list_runs(tmp_path)] == ["b", "a"]
    assert launcher.list_runs(tmp_path / "missing") == []
