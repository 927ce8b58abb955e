"""The sidebar launcher through AppTest: a real tiny training run starts, a second is refused, it finishes."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.training import launcher
from ui import state

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 300


@pytest.fixture
def launcher_env(tiny_model_dir, tiny_dataset, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("BRAINSCAN_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("BRAINSCAN_RUNS", str(runs))
    monkeypatch.setenv("BRAINSCAN_DATA", str(tiny_dataset))
    monkeypatch.setenv("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "full")
    monkeypatch.chdir(REPO)
    return runs


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
    picker = at.sidebar.selectbox(key=state.MODEL)
    assert "tiny ui run" in picker.options
    assert launcher.active_run(launcher_env) is None


def test_launcher_failure_is_shown(launcher_env, tmp_path):
    at = _app()
    at.sidebar.text_input(key=state.launch_key("data")).set_value(str(tmp_path / "nowhere"))
    at.button(key=state.launch_key("start")).click().run()
    assert any("Training/ and Testing/" in e.value for e in at.sidebar.error)
    assert launcher.active_run(launcher_env) is None


def test_launcher_hidden_behind_password(launcher_env):
    at = _app({"launcher_password": "s3cret"})
    assert "launch_start" not in _keys(at)
    at.sidebar.text_input(key=state.LAUNCHER_PASSWORD).set_value("wrong").run()
    assert any("Wrong password" in e.value for e in at.sidebar.error)
    assert "launch_start" not in _keys(at)
    at.sidebar.text_input(key=state.LAUNCHER_PASSWORD).set_value("s3cret").run()
    assert "launch_start" in _keys(at)


def _keys(at: AppTest) -> set[str]:
    return {b.key for b in at.sidebar.button}
