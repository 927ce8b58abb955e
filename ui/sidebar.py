"""The shared sidebar: the active-model picker and the training launcher."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import BrainScanError
from core.model.catalog import key_numbers
from core.model.factory import BACKBONES
from core.training import launcher
from core.training.loop import TrainConfig
from core.training.registry import history_for
from ui import state
from ui.figures import training_curves
from ui.presentation import format_seconds, key_numbers_text
from ui.services import available_models

POLL_SECONDS = 3.0
WEIGHT_CHOICES = {"none": "None (from scratch)", "imagenet": "ImageNet (download)", "file": "Local weights file"}
STATE_TEXT = {"starting": "Starting", "loading": "Loading data", "running": "Training", "evaluating": "Evaluating",
              "cancelling": "Cancelling…", "finished": "Finished", "failed": "Failed", "cancelled": "Cancelled"}


def model_picker() -> None:
    """Select the model every page uses; key numbers from its card underneath."""
    entries = available_models()
    if not entries:
        st.sidebar.warning("No model available yet.")
        return
    paths = [str(e.path) for e in entries]
    if st.session_state.get(state.MODEL) not in paths:  # first run of a session: the URL's choice (?model=...)
        wanted = st.query_params.get(state.QUERY_MODEL)
        st.session_state[state.MODEL] = wanted if wanted in paths else paths[0]
    labels = {str(e.path): e.label for e in entries}
    st.sidebar.selectbox("Active model", paths, key=state.MODEL, format_func=labels.get,
                         help="Every page uses this model; the choice is kept in the URL, so a reload or a shared "
                              "link keeps it.")
    st.query_params[state.QUERY_MODEL] = st.session_state[state.MODEL]
    entry = next(e for e in entries if str(e.path) == st.session_state[state.MODEL])
    numbers = key_numbers(entry.card)
    st.sidebar.caption(f"{entry.source} · " + (key_numbers_text(numbers) if numbers else "model card unreadable"))


def _secrets() -> dict[str, Any]:
    try:
        return dict(st.secrets)
    except FileNotFoundError:
        return {}


def _access() -> launcher.LauncherAccess:
    """The launcher's access rules, read afresh on every run (secrets, environment, the bound address)."""
    return launcher.access_from_settings(_secrets(), st.get_option("server.address"))


def _limiter() -> launcher.AttemptLimiter:
    return st.session_state.setdefault(state.LAUNCHER_ATTEMPTS, launcher.AttemptLimiter())


def _check_typed_password() -> None:
    """on_change of the password field: one attempt per submitted value; the field is emptied again."""
    typed = st.session_state.get(state.LAUNCHER_PASSWORD) or ""
    st.session_state[state.LAUNCHER_PASSWORD] = ""
    if not typed:
        return
    try:
        _limiter().attempt(_access(), typed)
    except BrainScanError as exc:
        st.session_state[state.LAUNCHER_MESSAGE] = str(exc)
    else:
        st.session_state[state.LAUNCHER_UNLOCKED] = typed
        st.session_state.pop(state.LAUNCHER_MESSAGE, None)


def _password() -> str | None:
    """The password this session unlocked the launcher with (kept server-side, re-checked on start and cancel)."""
    return st.session_state.get(state.LAUNCHER_UNLOCKED)


def _unlocked(access: launcher.LauncherAccess) -> bool:
    """True when the launcher is open to this session; otherwise shows why, or the password field."""
    if not access.needs_password:
        return True
    if not access.password:
        st.info("Training is disabled: this app is reachable from other machines and no launcher password is set. "
                f"Set `{launcher.PASSWORD_SETTING}` in .streamlit/secrets.toml (or {launcher.PASSWORD_ENV}), or bind "
                "the app to localhost (`--server.address 127.0.0.1`).")
        return False
    try:
        access.authorise(_password())
        return True
    except BrainScanError:
        st.session_state.pop(state.LAUNCHER_UNLOCKED, None)
    wait = _limiter().wait_seconds()
    st.text_input("Launcher password", type="password", key=state.LAUNCHER_PASSWORD, on_change=_check_typed_password,
                  disabled=wait > 0)
    message = st.session_state.get(state.LAUNCHER_MESSAGE)
    if wait > 0:
        st.error(f"Too many wrong passwords: try again in {format_seconds(wait)}.")
    elif message:
        st.error(message)
    return False


STARTED = state.launch_key("started")            # the run this session started: {run_dir, pid}
CANCEL_ERROR = state.launch_key("cancel_error")  # why the last cancel was refused


def _launch_options() -> TrainConfig:
    """The launcher's fields: the common ones, then only those of the recipe the weights choose."""
    data = st.text_input("Data folder (Training/ and Testing/)", str(launcher.default_data_dir()),
                         key=state.launch_key("data"))
    backbone = st.selectbox("Backbone", BACKBONES, index=BACKBONES.index("EfficientNetB0"),
                            key=state.launch_key("backbone"))
    weights = st.radio("Weights", list(WEIGHT_CHOICES), format_func=WEIGHT_CHOICES.get, key=state.launch_key("weights"),
                       help="None trains every layer from scratch (one phase); ImageNet (needs internet access to "
                            "download) or a local Keras 'notop' weights file train the head, then fine-tune.")
    weights_file = (st.text_input("Local weights file", "", key=state.launch_key("weights_file"))
                    if weights == "file" else "")
    left, right = st.columns(2)
    image_size = left.number_input("Image size (px)", 32, 512, 128, 16, key=state.launch_key("image_size"))
    batch_size = right.number_input("Batch size", 1, 256, 32, key=state.launch_key("batch_size"))
    recipe: dict[str, Any] = {}
    if weights == "none":
        st.caption("From scratch: every layer trains; AdamW, warm-up then cosine decay")
        left, right = st.columns(2)
        recipe["epochs_scratch"] = left.number_input("Epochs", 1, 200, 30, key=state.launch_key("epochs_scratch"))
        recipe["lr_scratch"] = right.number_input("Learning rate", 1e-6, 1.0, 2e-3, format="%.1e",
                                                  key=state.launch_key("lr_scratch"))
        recipe["warmup_epochs"] = left.number_input("Warm-up epochs", 0, 50, 2, key=state.launch_key("warmup_epochs"))
    else:
        st.caption("Pretrained weights: the head with the backbone frozen, then fine-tuning of the top layers")
        left, right = st.columns(2)
        recipe["epochs_head"] = left.number_input("Head epochs", 0, 200, 12, key=state.launch_key("epochs_head"))
        recipe["lr_head"] = right.number_input("Head LR", 1e-7, 1.0, 1e-3, format="%.1e", key=state.launch_key("lr_head"))
        recipe["epochs_finetune"] = left.number_input("Fine-tune epochs", 0, 200, 8,
                                                      key=state.launch_key("epochs_finetune"))
        recipe["lr_finetune"] = right.number_input("Fine-tune LR", 1e-8, 1.0, 1e-5, format="%.1e",
                                                   key=state.launch_key("lr_finetune"))
        recipe["unfreeze_top"] = left.number_input("Layers unfrozen", 1, 500, 30, key=state.launch_key("unfreeze_top"),
                                                   help="How many of the backbone's top layers fine-tuning trains.")
    limit = st.number_input("Images per class (0 = all)", 0, 100000, 0, key=state.launch_key("limit"),
                            help="A small number gives a quick trial run.")
    name = st.text_input("Run name (optional)", "", key=state.launch_key("name"))
    recipe = {k: (float(v) if k.startswith("lr_") else int(v)) for k, v in recipe.items()}
    return TrainConfig(data=data, backbone=backbone, weights=weights_file if weights == "file" else weights,
                       image_size=int(image_size), batch_size=int(batch_size), limit_per_class=int(limit), name=name,
                       **recipe)


@st.cache_data(ttl=60, show_spinner=False)
def _estimate(config: TrainConfig, access: launcher.LauncherAccess, root: str) -> launcher.DurationEstimate:
    return launcher.estimate_run(config, access, Path(root))


def _show_estimate(config: TrainConfig, access: launcher.LauncherAccess) -> None:
    try:
        estimate = _estimate(config, access, str(launcher.runs_root()))
    except BrainScanError:  # outside the allowed folders, no Training/Testing layout, a missing weights file
        st.caption("Estimated duration: shown once the data folder (and weights file) can be used.")
        return
    st.caption(f"Estimated duration: about {format_seconds(estimate.seconds)} (an estimate: "
               f"{estimate.explanation()}).")


def _launch_form() -> None:
    """The training form (a fragment: changing a field reruns only the form, so the recipe's fields and the
    estimate follow at once); a successful start reruns the app, which then polls the run."""
    options = _launch_options()
    access = _access()
    _show_estimate(options, access)
    if st.button("Start training", type="primary", key=state.launch_key("start")):
        try:
            lock = launcher.start_run(options, access=access, password=_password())
        except BrainScanError as exc:
            st.error(str(exc))
        else:
            st.session_state[STARTED] = {"run_dir": lock["run_dir"], "pid": lock["pid"]}
            st.rerun(scope="app")


def _progress(status: dict[str, Any]) -> float:
    total = status.get("epochs_total") or 0
    if not total:
        return 0.0
    done = (status.get("global_epoch") or 0) - 1 + (status.get("epoch_progress") or 0.0)
    return min(max(done / total, 0.0), 1.0)


def _show_run(run_dir: Path, active: bool) -> None:
    status = launcher.run_status(run_dir)
    run_state = status.get("state", "starting")
    st.markdown(f"**{run_dir.name}** — {STATE_TEXT.get(run_state, run_state)}")
    started = st.session_state.get(STARTED)
    if started and started["run_dir"] == str(run_dir) and run_state in ("starting", "loading"):
        st.success(f"Started training in {started['run_dir']} (pid {started['pid']}).")
    elif started:  # running, ended or another run: the start message is history
        st.session_state.pop(STARTED, None)
    if run_state == "running":
        st.progress(_progress(status), text=f"phase {status.get('phase', '–')} · epoch {status.get('epoch', 0)}/"
                                            f"{status.get('phase_epochs', '–')} · "
                                            f"ETA {format_seconds(status.get('eta_seconds'))}")
    elif run_state in ("starting", "loading", "evaluating", "cancelling"):
        st.progress(_progress(status), text={
            "evaluating": "Evaluating the best checkpoint on the test set…",
            "cancelling": "Cancelling: the run stops at the end of the current batch (the unfinished epoch is "
                          "discarded) and exports its best checkpoint…"}.get(
            run_state, "Starting: loading the data and building the model…"))
    metrics = status.get("metrics") or {}
    if metrics:
        st.caption(f"last epoch: loss {metrics.get('loss', 0):.3f} · accuracy {metrics.get('accuracy', 0):.3f} · "
                   f"val loss {metrics.get('val_loss', 0):.3f} · val accuracy {metrics.get('val_accuracy', 0):.3f}")
    if run_state == "failed":
        st.error(f"The run failed: {status.get('error') or 'no error message'}")
    elif run_state == "finished":
        st.success(f"Finished — test accuracy {status.get('test_accuracy', 0):.3f}. The model is in the picker above.")
    elif run_state == "cancelled" and status.get("model_dir"):
        st.info("Cancelled — the best checkpoint was exported to the run's model/ folder but not evaluated, so the "
                "model picker does not offer it. `python -m train --resume RUN_DIR` finishes and evaluates the run.")
    elif run_state == "cancelled":
        st.info("Cancelled before an epoch was completed: nothing was exported. `python -m train --resume RUN_DIR` "
                "starts it again.")
    history = history_for(run_dir / "model")
    if history:
        st.plotly_chart(training_curves(history, stacked=True), key=state.LIVE_CURVES_PREFIX + run_dir.name)
    with st.expander("Log"):
        st.code(launcher.process_log_tail(run_dir, 15) or "(no output yet)", language=None)
    error = st.session_state.pop(CANCEL_ERROR, None)
    if error:
        st.error(error)
    if active and run_state not in (*launcher.TERMINAL_STATES, "cancelling"):
        st.button("Cancel training", key=state.launch_key("cancel"), on_click=_request_cancel)


def _request_cancel() -> None:
    """on_click of Cancel: runs before the rerun, so the rerun already reads the run as cancelling."""
    try:
        launcher.cancel_run(access=_access(), password=_password())
    except BrainScanError as exc:
        st.session_state[CANCEL_ERROR] = str(exc)


def _run_panel() -> None:
    """Status of the active (or latest) run; reruns the whole app once the run ends."""
    lock = launcher.active_run()
    run_dir = Path(lock["run_dir"]) if lock else launcher.latest_run()
    if run_dir is None:
        st.caption("No training runs yet.")
        return
    _show_run(run_dir, lock is not None)
    if st.session_state.get(state.LAUNCH_POLLING) and lock is None:
        st.session_state[state.LAUNCH_POLLING] = False
        st.rerun(scope="app")


def training_launcher() -> None:
    """The launcher: password gate, form, start, and the polled status of the run."""
    with st.sidebar.expander("Train a model", expanded=bool(launcher.active_run())):
        access = _access()
        if not _unlocked(access):
            return
        panel = st.container()
        st.fragment(_launch_form)()
        active = launcher.active_run() is not None
        st.session_state[state.LAUNCH_POLLING] = active
        with panel:
            st.fragment(_run_panel, run_every=POLL_SECONDS if active else None)()
