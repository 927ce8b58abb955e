"""core.training.launcher: command line, lock file (one active run, stale locks), status of dead runs, cancel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import LauncherAccessError, TrainingConfigError
from core.training import launcher
from core.training import run_files as rf
from core.training.loop import TrainConfig


def _open(*roots: Path) -> launcher.LauncherAccess:
    """A launcher on an app bound to localhost, allowed to use `roots` for data and weights."""
    return launcher.LauncherAccess(server_address="127.0.0.1", data_roots=roots, weights_roots=roots)


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
    assert "--epochs-head" not in scratch and "--unfreeze-top" not in scratch
    parsed = parse_args(scratch[3:])
    assert (parsed.data, parsed.run_dir, parsed.backbone, parsed.weights) == ("D", str(tmp_path), "TinyCNN", "none")
    assert (parsed.image_size, parsed.epochs_scratch, parsed.lr_scratch) == (32, 2, 0.01)
    assert parsed.warmup_epochs == config.warmup_epochs
    assert (parsed.limit_per_class, parsed.name) == (5, "my run")
    dashes = launcher.train_command(TrainConfig(data="-D", weights="none", name="-x", lr_scratch=-1.0), Path("-r"))
    parsed = parse_args(dashes[3:])
    assert (parsed.data, parsed.run_dir, parsed.name, parsed.lr_scratch) == ("-D", "-r", "-x", -1.0)
    pretrained = launcher.train_command(TrainConfig(data="D", weights="imagenet", epochs_head=3, epochs_finetune=1,
                                                    lr_finetune=2e-5, unfreeze_top=12), tmp_path)
    assert "--epochs-scratch" not in pretrained and "--limit-per-class" not in pretrained
    assert "--warmup-epochs" not in " ".join(pretrained)
    parsed = parse_args(pretrained[3:])
    assert (parsed.epochs_head, parsed.epochs_finetune, parsed.lr_finetune, parsed.unfreeze_top) == (3, 1, 2e-5, 12)
    assert launcher.recipe_flags(TrainConfig(data="D", weights="/no/such/file.h5")) == launcher.PRETRAINED_FLAGS


def test_resume_overrides_are_noticed_in_both_spellings():
    from train.__main__ import _given

    assert _given("epochs_scratch", ["--resume", "r", "--epochs-scratch=5"])
    assert _given("epochs_scratch", ["--resume", "r", "--epochs-scratch", "5"])
    assert not _given("epochs_scratch", ["--resume", "r", "--epochs-head=5", "--name=--epochs-scratch"])


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
    lock = launcher.start_run(options, tmp_path, access=_open(tiny_dataset))
    assert launcher.active_run(tmp_path)["pid"] == lock["pid"]
    assert json.loads((Path(lock["run_dir"]) / launcher.LAUNCH_FILE).read_text())["pid"] == lock["pid"]
    with pytest.raises(TrainingConfigError, match="already active"):
        launcher.start_run(options, tmp_path, access=_open(tiny_dataset))
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
    guarded = launcher.LauncherAccess(password="s3cret", server_address="127.0.0.1")
    with pytest.raises(LauncherAccessError, match="Wrong launcher password"):
        launcher.cancel_run(tmp_path, access=guarded, password="nope")
    assert not (run / rf.CANCEL_FILE).exists()
    rf.write_json(run / rf.STATUS_FILE, {"state": "running", "pid": os.getpid()})
    assert launcher.run_status(run)["state"] == "running"
    before = time.time()
    assert launcher.cancel_run(tmp_path, access=guarded, password="s3cret") == run
    assert (run / rf.CANCEL_FILE).exists()
    status = launcher.run_status(run)
    assert status["state"] == "cancelling" and status["cancel_requested"] >= before, "reported at once"
    assert rf.read_status(run)["state"] == "running", "status.json stays the training process's to write"
    rf.write_json(run / rf.STATUS_FILE, {"state": "cancelled", "pid": os.getpid()})
    assert launcher.run_status(run)["state"] == "cancelled"
    rf.write_json(run / rf.STATUS_FILE, {"state": "running", "pid": _dead_pid()})
    assert launcher.run_status(run)["state"] == "failed", "a dead process is not cancelling"
    (tmp_path / launcher.LOCK_FILE).unlink()
    assert launcher.cancel_run(tmp_path, access=_open()) is None


def test_list_runs_newest_first(tmp_path):
    for i, name in enumerate(("a", "b")):
        (tmp_path / name).mkdir()
        rf.write_json(tmp_path / name / rf.CONFIG_FILE, {})
        stamp = time.time() - 100 + i * 10
        os.utime(tmp_path / name, (stamp, stamp))
    (tmp_path / "not-a-run").mkdir()
    assert [p.name for p in launcher.list_runs(tmp_path)] == ["b", "a"]
    assert launcher.list_runs(tmp_path / "missing") == []


@pytest.mark.parametrize("address, open_setting, password, typed, allowed", [
    ("127.0.0.1", False, None, None, True),
    ("localhost", False, None, None, True),
    ("::1", False, None, None, True),
    ("[::1]", False, None, None, True),
    (None, False, None, None, False),          # Streamlit's default: every interface
    ("", False, None, None, False),
    ("0.0.0.0", False, None, None, False),
    ("10.1.2.3", False, None, None, False),
    ("0.0.0.0", True, None, None, True),       # opened explicitly
    ("0.0.0.0", False, "pw", "pw", True),
    ("0.0.0.0", False, "pw", "PW", False),
    ("0.0.0.0", False, "pw", None, False),
    ("127.0.0.1", False, "pw", "", False),     # a configured password is asked for on localhost too
    ("0.0.0.0", True, "pw", "x", False),
])
def test_launcher_access_is_closed_by_default(address, open_setting, password, typed, allowed):
    access = launcher.LauncherAccess(password=password, server_address=address, open_without_password=open_setting)
    if allowed:
        access.authorise(typed)
    else:
        with pytest.raises(LauncherAccessError, match="closed|Wrong launcher password"):
            access.authorise(typed)


def test_start_run_refuses_without_authorisation(tiny_dataset, tmp_path):
    options = TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none")
    public = launcher.LauncherAccess(server_address="0.0.0.0", data_roots=(tiny_dataset,))
    with pytest.raises(LauncherAccessError, match="closed"):
        launcher.start_run(options, tmp_path, access=public)
    with pytest.raises(LauncherAccessError, match="Wrong"):
        launcher.start_run(options, tmp_path, access=launcher.LauncherAccess(password="pw", server_address="0.0.0.0",
                                                                            data_roots=(tiny_dataset,)), password="x")
    assert launcher.active_run(tmp_path) is None and not list(tmp_path.iterdir())


def test_paths_outside_the_roots_are_refused_alike(tmp_path):
    root, outside = tmp_path / "allowed", tmp_path / "secret"
    (root / "data").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "w.h5").write_bytes(b"")
    access = _open(root)
    messages = set()
    for data in (outside, tmp_path / "missing", root / "escape", root / ".." / "secret", "/etc"):
        with pytest.raises(LauncherAccessError, match="must be inside") as info:
            access.check_paths(TrainConfig(data=str(data), weights="none"))
        messages.add(str(info.value))
    assert len(messages) == 1, "the same message whether or not the folder exists"
    access.check_paths(TrainConfig(data=str(root / "data"), weights=str(root / "w.h5")))
    access.check_paths(TrainConfig(data=str(root / "not-yet"), weights="imagenet"))
    with pytest.raises(LauncherAccessError, match="weights file must be inside"):
        access.check_paths(TrainConfig(data=str(root / "data"), weights=str(outside / "w.h5")))


def test_access_from_settings_secrets_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(launcher.PASSWORD_ENV, "from-env")
    monkeypatch.setenv(launcher.DATA_ROOTS_ENV, f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.delenv(launcher.OPEN_ENV, raising=False)
    access = launcher.access_from_settings({}, "0.0.0.0")
    assert access.password == "from-env" and access.data_roots == (tmp_path / "a", tmp_path / "b")
    assert not access.open_without_password and access.needs_password
    access = launcher.access_from_settings({"launcher_password": "from-secrets", "launcher_data_roots": ["/x"],
                                            "launcher_open_without_password": True}, "localhost")
    assert access.password == "from-secrets" and access.data_roots == (Path("/x"),) and access.open_without_password
    monkeypatch.delenv(launcher.PASSWORD_ENV)
    monkeypatch.delenv(launcher.DATA_ROOTS_ENV)
    access = launcher.access_from_settings({}, None)
    assert access.password is None and access.data_roots == (launcher.default_data_dir(),)


def test_attempt_limiter_locks_out_with_backoff():
    access = launcher.LauncherAccess(password="right", server_address="0.0.0.0")
    limiter = launcher.AttemptLimiter(max_failures=3, base_seconds=10, max_seconds=25)
    for _ in range(2):
        with pytest.raises(LauncherAccessError, match="Wrong"):
            limiter.attempt(access, "wrong", now=0.0)
    limiter.attempt(access, "right", now=0.0)
    assert limiter.failures == 0, "a success resets the count"
    for _ in range(3):
        with pytest.raises(LauncherAccessError, match="Wrong"):
            limiter.attempt(access, "wrong", now=100.0)
    assert limiter.wait_seconds(now=100.0) == 10
    with pytest.raises(LauncherAccessError, match="try again in 5 s"):
        limiter.attempt(access, "right", now=105.0)
    with pytest.raises(LauncherAccessError, match="Wrong"):
        limiter.attempt(access, "wrong", now=110.0)
    assert limiter.wait_seconds(now=110.0) == 20, "the lock-out doubles"
    with pytest.raises(LauncherAccessError, match="Wrong"):
        limiter.attempt(access, "wrong", now=130.0)
    assert limiter.wait_seconds(now=130.0) == 25, "up to the cap"
    limiter.attempt(access, "right", now=155.0)


def test_estimate_seconds_is_loading_plus_epochs_plus_evaluation():
    # 1,400 scans read at 100/s; 10 epochs of 1,000 training images at 20 img/s and 100 validation images at 60 img/s;
    # then validation + test (400) at 60 img/s.
    assert launcher.estimate_seconds([(10, 20.0)], 1000, 100, 300) == pytest.approx(14 + 10 * (50 + 100 / 60) + 400 / 60)
    # Two phases at their own throughput; the final evaluation runs at the last one's inference speed.
    assert launcher.estimate_seconds([(2, 30.0), (3, 10.0)], 600, 60) == pytest.approx(
        6.6 + 2 * (20 + 60 / 90) + 3 * (60 + 2) + 60 / 30)
    assert launcher.estimate_seconds([(0, 5.0)], 100, 0, load_images_per_second=50.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="positive throughput"):
        launcher.estimate_seconds([(3, 0.0)], 100, 10)


def test_default_throughput_scales_with_backbone_and_pixels():
    assert launcher.default_throughput("EfficientNetB0", 128) == launcher.DEFAULT_IMAGES_PER_SECOND
    assert launcher.default_throughput("EfficientNetB0", 256) == pytest.approx(launcher.DEFAULT_IMAGES_PER_SECOND / 4)
    assert launcher.default_throughput("EfficientNetB4", 128) < launcher.default_throughput("EfficientNetB0", 128)
    assert launcher.default_throughput("TinyCNN", 32) > launcher.default_throughput("EfficientNetB0", 32)


def _recorded_run(root: Path, name: str, state: str, rates: list[float], backbone: str = "TinyCNN", size: int = 32,
                  phase: str = "scratch") -> None:
    run = root / name
    run.mkdir(parents=True)
    rf.write_json(run / rf.CONFIG_FILE, {"backbone": backbone, "image_size": size})
    rf.write_json(run / rf.STATUS_FILE, {"state": state})
    rf.write_json(run / rf.HISTORY_FILE, [{"phase": phase, "images_per_second": r} for r in rates])


def test_estimate_run_uses_finished_runs_throughput_else_the_default(tiny_dataset, tmp_path):
    runs = tmp_path / "runs"
    config = TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none", image_size=32, epochs_scratch=5)
    default = launcher.estimate_run(config, _open(tiny_dataset), runs)
    # 12 Training scans per class: 1 to validation (10%), 11 to training; 6 Testing scans per class.
    assert (default.train_images, default.validation_images, default.test_images) == (44, 4, 24)
    ips = launcher.default_throughput("TinyCNN", 32)
    assert default.phases == (("scratch", 5, ips, "default for this backbone and size on a 2-core CPU"),)
    assert default.seconds == pytest.approx(launcher.estimate_seconds([(5, ips)], 44, 4, 24))

    _recorded_run(runs, "a", "finished", [10.0, 30.0])
    _recorded_run(runs, "b", "finished", [20.0])
    _recorded_run(runs, "cancelled", "cancelled", [1.0, 1.0, 1.0])         # not a finished run
    _recorded_run(runs, "bigger", "finished", [1.0], size=64)               # another image size
    _recorded_run(runs, "head", "finished", [1.0], phase="head")           # another phase
    assert launcher.recorded_throughput("TinyCNN", 32, "scratch", runs) == (20.0, 3)
    recorded = launcher.estimate_run(config, _open(tiny_dataset), runs)
    assert recorded.phases == (("scratch", 5, 20.0, "median of 3 recorded epochs"),)
    assert recorded.seconds == pytest.approx(launcher.estimate_seconds([(5, 20.0)], 44, 4, 24))
    assert "scratch 5 epochs at 20 img/s (median of 3 recorded epochs)" in recorded.explanation()
    pretrained = TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="imagenet", image_size=32,
                             epochs_head=2, epochs_finetune=3)
    two_phase = launcher.estimate_run(pretrained, _open(tiny_dataset), runs)
    assert [(name, epochs) for name, epochs, _, _ in two_phase.phases] == [("head", 2), ("finetune", 3)]
    assert two_phase.phases[0][2] == 1.0 and two_phase.phases[1][2] == ips, "per phase: recorded, else default"

    limited = launcher.estimate_run(TrainConfig(data=str(tiny_dataset), backbone="TinyCNN", weights="none",
                                                image_size=32, limit_per_class=3), _open(tiny_dataset), runs)
    assert (limited.train_images, limited.validation_images, limited.test_images) == (12, 4, 12)


def test_estimate_run_reads_no_folder_outside_the_roots(tiny_dataset, tmp_path):
    with pytest.raises(LauncherAccessError, match="must be inside"):
        launcher.estimate_run(TrainConfig(data=str(tiny_dataset), weights="none"), _open(tmp_path / "elsewhere"))


def test_a_launcher_run_trains_at_a_lower_priority(tmp_path, monkeypatch):
    """The launcher passes --nice (BRAINSCAN_TRAIN_NICE, default 10); `lower_priority` sets the process's and its
    scheduler group's nice value, so the app's sessions come first."""
    import subprocess
    import sys

    from train.__main__ import parse_args

    monkeypatch.delenv("BRAINSCAN_TRAIN_NICE", raising=False)
    assert parse_args(launcher.train_command(TrainConfig(data="D", weights="none"), tmp_path)[3:]).nice == 10
    monkeypatch.setenv("BRAINSCAN_TRAIN_NICE", "15")
    assert parse_args(launcher.train_command(TrainConfig(data="D", weights="none"), tmp_path)[3:]).nice == 15
    code = ("import os; from pathlib import Path; from core.training.priority import lower_priority, AUTOGROUP; "
            "print(lower_priority(12)); print(os.nice(0)); "
            "print(AUTOGROUP.read_text().split()[-1] if AUTOGROUP.exists() else 'none')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    said, nice, group = done.stdout.split("\n")[:3]
    assert "process nice 12" in said and nice == "12"
    assert group in ("12", "none")  # a kernel without autogroups has no group value to set
    with pytest.raises(ValueError, match="0-19"):
        from core.training.priority import lower_priority

        lower_priority(25)
