"""The sidebar launcher through AppTest: a real tiny training run starts, a second is refused, it finishes;
closed on a non-local address without a password; password attempts limited; paths restricted to roots."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from core.training import launcher
from ui import state

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 300


def _bind(address: str | None) -> None:
    """Set Streamlit's server.address as `streamlit run --server.address` would (AppTest runs in this process)."""
    st_config.set_option("server.address", address)


@pytest.fixture
def launcher_env(tiny_model_dir, tiny_dataset, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("BRAINSCAN_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("BRAINSCAN_RUNS", str(runs))
    monkeypatch.setenv("BRAINSCAN_DATA", str(tiny_dataset))
    monkeypatch.setenv(launcher.DATA_ROOTS_ENV, f"{tiny_dataset}{os.pathsep}{tmp_path / 'data'}")
    for name in (launcher.PASSWORD_ENV, launcher.OPEN_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "full")
    monkeypatch.chdir(REPO)
    before = st_config.get_option("server.address")
    _bind("127.0.0.1")
    yield runs
    _bind(before)


def _app(secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _fill_tiny_run(at: AppTest) -> None:
    at.sidebar.selectbox(key=state.launch_key("backbone")).set_value("TinyCNN")
    at.sidebar.radio(key=state.launch_key("weights")).set_value("none")
    at.sidebar.number_input(key=state.launch_key("image_size")).set_value(32)
    at.sidebar.number_input(key=state.launch_key("batch_size")).set_value(16)
    at.sidebar.number_input(key=state.launch_key("epochs_scratch")).set_value(2)
    at.sidebar.number_input(key=state.launch_key("limit")).set_value(8)
    at.sidebar.text_input(key=state.launch_key("name")).set_value("tiny ui run")


def test_launcher_starts_refuses_second_and_finishes(launcher_env, tiny_dataset):
    at = _app()
    assert at.sidebar.text_input(key=state.launch_key("data")).value == str(tiny_dataset)
    _fill_tiny_run(at)
    at.button(key=state.launch_key("start")).click().run()
    assert not at.exception, at.exception
    assert any("Started training" in s.value for s in at.sidebar.success), [e.value for e in at.sidebar.error]
    lock = launcher.active_run(launcher_env)
    assert lock is not None and Path(lock["run_dir"]).name.endswith("tinycnn-tiny_ui_run")

    at.button(key=state.launch_key("start")).click().run()
    assert any("already active" in e.value for e in at.sidebar.error)
    assert "launch_cancel" in _keys(at)

    deadline = time.time() + RUN_TIMEOUT
    while launcher.active_run(launcher_env) and time.time() < deadline:
        time.sleep(1)
    status = launcher.run_status(lock["run_dir"])
    assert status["state"] == "finished", (status, launcher.process_log_tail(lock["run_dir"], 30))

    at.run()
    assert not at.exception, at.exception
    assert any("Finished" in s.value for s in at.sidebar.success)
    assert not _started_messages(at), "the start message does not outlive the start"
    picker = at.sidebar.selectbox(key=state.MODEL)
    assert "tiny ui run" in picker.options
    assert launcher.active_run(launcher_env) is None


def _started_messages(at: AppTest) -> list[str]:
    return [s.value for s in at.sidebar.success if "Started training" in s.value]


def _markdown(at: AppTest) -> str:
    return " ".join(m.value for m in at.sidebar.markdown)


def test_cancel_shows_cancelling_at_once_and_the_run_stops_mid_epoch(launcher_env):
    at = _app()
    _fill_tiny_run(at)
    at.sidebar.number_input(key=state.launch_key("epochs_scratch")).set_value(200)
    at.sidebar.number_input(key=state.launch_key("batch_size")).set_value(2)
    at.button(key=state.launch_key("start")).click().run()
    lock = launcher.active_run(launcher_env)
    assert lock is not None and _started_messages(at)
    run_dir = Path(lock["run_dir"])

    deadline = time.time() + RUN_TIMEOUT
    while (launcher.run_status(run_dir).get("global_epoch") or 0) < 1 and time.time() < deadline:
        time.sleep(0.2)
    at.run()
    assert "Training" in _markdown(at) and not _started_messages(at), "running: the start message is gone"

    at.button(key=state.launch_key("cancel")).click().run()
    assert not at.exception, at.exception
    clicked = time.time()
    assert "Cancelling…" in _markdown(at), _markdown(at)
    assert "launch_cancel" not in _keys(at), "no second cancel while cancelling"
    while launcher.active_run(launcher_env) and time.time() < deadline:
        time.sleep(0.1)
    seconds = time.time() - clicked
    print(f"Cancel click to the end of the training process: {seconds:.1f} s")
    status = launcher.run_status(run_dir)
    assert status["state"] == "cancelled" and status["global_epoch"] < 200, status
    assert "the epoch is discarded" in (run_dir / "train.log").read_text()

    at.run()
    assert not at.exception, at.exception
    assert any("Cancelled" in i.value for i in at.sidebar.info) and not _started_messages(at)


def test_launcher_shows_only_the_chosen_recipes_fields_and_an_estimate(launcher_env):
    scratch = {state.launch_key(k) for k in ("epochs_scratch", "lr_scratch", "warmup_epochs")}
    pretrained = {state.launch_key(k) for k in ("epochs_head", "epochs_finetune", "lr_head", "lr_finetune",
                                                "unfreeze_top")}
    at = _app()
    fields = {w.key for w in at.sidebar.number_input}
    assert scratch <= fields and not pretrained & fields
    assert state.launch_key("weights_file") not in {t.key for t in at.sidebar.text_input}
    estimate = [c.value for c in at.sidebar.caption if c.value.startswith("Estimated duration")]
    assert len(estimate) == 1 and "an estimate" in estimate[0] and "img/s" in estimate[0], estimate

    for weights in ("imagenet", "file"):
        at.sidebar.radio(key=state.launch_key("weights")).set_value(weights).run()
        assert not at.exception, at.exception
        fields = {w.key for w in at.sidebar.number_input}
        assert pretrained <= fields and not scratch & fields, weights
    assert state.launch_key("weights_file") in {t.key for t in at.sidebar.text_input}

    at.sidebar.radio(key=state.launch_key("weights")).set_value("none").run()
    at.sidebar.number_input(key=state.launch_key("epochs_scratch")).set_value(60).run()
    longer = [c.value for c in at.sidebar.caption if c.value.startswith("Estimated duration")]
    assert longer != estimate and "scratch 60 epochs" in longer[0], (estimate, longer)


def test_launcher_failure_is_shown(launcher_env, tmp_path):
    at = _app()
    at.sidebar.text_input(key=state.launch_key("data")).set_value(str(tmp_path / "data" / "nowhere"))
    at.button(key=state.launch_key("start")).click().run()
    assert any("Training/ and Testing/" in e.value for e in at.sidebar.error)
    assert launcher.active_run(launcher_env) is None


@pytest.mark.parametrize("data", ["/etc", "/no/such/folder", "OUTSIDE"])
def test_launcher_refuses_paths_outside_the_roots(launcher_env, tmp_path, data):
    at = _app()
    data = str(tmp_path / "outside") if data == "OUTSIDE" else data
    _fill_tiny_run(at)
    at.sidebar.text_input(key=state.launch_key("data")).set_value(data)
    at.button(key=state.launch_key("start")).click().run()
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith("The data folder must be inside one of the allowed folders"), errors
    assert data not in errors[0], "nothing said about the folder asked for"
    assert launcher.active_run(launcher_env) is None and not launcher_env.exists()


@pytest.mark.parametrize("address", [None, "0.0.0.0", "192.168.1.20"])
def test_launcher_closed_on_a_non_local_address_without_password(launcher_env, address):
    _bind(address)
    at = _app()
    assert "launch_start" not in _keys(at)
    assert any("Training is disabled" in i.value for i in at.sidebar.info)
    assert state.LAUNCHER_PASSWORD not in {t.key for t in at.sidebar.text_input}


def test_launcher_open_on_a_non_local_address_when_explicitly_allowed(launcher_env):
    _bind("0.0.0.0")
    assert "launch_start" in _keys(_app({"launcher_open_without_password": True}))


def test_launcher_hidden_behind_password(launcher_env):
    _bind("0.0.0.0")
    at = _app({"launcher_password": "s3cret"})
    assert "launch_start" not in _keys(at)
    at.sidebar.text_input(key=state.LAUNCHER_PASSWORD).set_value("wrong").run()
    assert any("Wrong launcher password" in e.value for e in at.sidebar.error)
    assert "launch_start" not in _keys(at)
    at.run()
    assert at.session_state[state.LAUNCHER_ATTEMPTS].failures == 1, "a rerun is not another attempt"
    at.sidebar.text_input(key=state.LAUNCHER_PASSWORD).set_value("s3cret").run()
    assert "launch_start" in _keys(at)


def test_launcher_locks_out_after_repeated_wrong_passwords(launcher_env):
    _bind("0.0.0.0")
    at = _app({"launcher_password": "s3cret"})
    for i in range(5):
        at.sidebar.text_input(key=state.LAUNCHER_PASSWORD).set_value(f"wrong{i}").run()
    assert any("Too many wrong passwords" in e.value for e in at.sidebar.error)
    assert at.sidebar.text_input(key=state.LAUNCHER_PASSWORD).disabled
    at.session_state[state.LAUNCHER_PASSWORD] = "s3cret"
    at.run()
    assert "launch_start" not in _keys(at), "the right password does not open a locked-out session"


def test_a_changed_password_locks_the_session_again(launcher_env):
    at = _app({"launcher_password": "s3cret"})
    at.sidebar.text_input(key=state.LAUNCHER_PASSWORD).set_value("s3cret").run()
    _fill_tiny_run(at)
    at.secrets["launcher_password"] = "changed"
    at.button(key=state.launch_key("start")).click().run()
    assert launcher.active_run(launcher_env) is None
    assert "launch_start" not in _keys(at)


def _keys(at: AppTest) -> set[str]:
    return {b.key for b in at.sidebar.button}
