"""What every page shares: the cached model, cached results, the scans of this session, the notice."""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core.errors import BrainScanError
from core.io.images import model_view, preprocess
from core.io.scan import Scan, decode_scan
from core.model.assessment import Assessment
from core.model.card import ModelCard
from core.model.catalog import ModelEntry, sample_scans
from core.model.factory import default_model_dir, load_model
from core.model.inference import classify, predict_proba
from core.model.trust import Trust, load_trust
from core.settings import settings
from core.training.launcher import runs_root
from core.training.registry import list_models
from ui import state
from ui.presentation import fit_for_display, scan_labels
from ui.work_queue import WorkQueue

NOTICE = ("**Research use only — not a medical device.** Predictions and explanations support, "
          "and never replace, a radiologist's reading.")
WARM_UP_THREAD = "brainscan-warm-up"
DISPLAY_SIDE = 1024  # longest side of a cached display image
EXPLANATIONS_CACHED = 128

_LOG = logging.getLogger("brainscan.app")
if not _LOG.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    _LOG.addHandler(_handler)
    _LOG.setLevel(logging.INFO)


def notice() -> None:
    """The research-use notice shown on every page."""
    st.caption(NOTICE)


def available_models() -> list[ModelEntry]:
    return list_models(runs_root())


def _warm_explainers(model: Any, path: str) -> None:
    """Trace the explainers' TensorFlow functions in the background, so the first Explain page is quick."""
    from core.xai.explainers import warm_up

    try:
        seconds = warm_up(model)
    except Exception:  # logged, not raised: a thread has no page to show it on, and explaining will show it
        _LOG.exception("warming the explainers of %s failed; the first explanation will be slower", path)
        return
    _LOG.info("explainers warmed for %s in %.1f s (%s)", path, sum(seconds.values()),
              ", ".join(f"{m} {t:.1f} s" for m, t in seconds.items()))


@st.cache_resource(max_entries=3, show_spinner="Loading the model…")
def _load(path: str, key: str) -> tuple[Any, ModelCard]:
    """Load once per model path and modification time, and warm it up so the first scan is quick; the
    explainers warm up in a background thread meanwhile (the page is not held up)."""
    model, card = load_model(path)
    predict_proba(model, np.zeros((1, card.image_size, card.image_size, 3), np.float32))
    # Not a daemon: the interpreter waits for it at exit instead of killing it inside a TensorFlow call (abort).
    threading.Thread(target=_warm_explainers, args=(model, path), name=WARM_UP_THREAD).start()
    return model, card


def selected_entry() -> ModelEntry | None:
    """The model chosen in the sidebar (the first available one by default)."""
    entries = available_models()
    chosen = st.session_state.get(state.MODEL)
    return next((e for e in entries if str(e.path) == chosen), entries[0] if entries else None)


def active_model() -> tuple[ModelEntry, Any, ModelCard] | None:
    """(entry, model, card) of the chosen model, or None after showing why there is none."""
    entry = selected_entry()
    if entry is None:
        st.error(f"No model is available. The app looks for a model folder (model.keras + model_card.json) at "
                 f"{default_model_dir()} (set BRAINSCAN_MODEL to use another folder), and for finished "
                 f"training runs under {runs_root()}/*/model. Train one from the sidebar, or install the bundled model.")
        return None
    try:
        model, card = _load(str(entry.path), entry.key)
    except BrainScanError as exc:
        st.error(str(exc))
        return None
    return entry, model, card


@st.cache_resource(max_entries=3, show_spinner=False)
def trust_for(path: str, key: str, class_names: tuple[str, ...]) -> Trust | None:
    """The model folder's fitted input gate, temperature and conformal sets (None: not calibrated)."""
    return load_trust(path, list(class_names))


@st.cache_data(max_entries=16, show_spinner=False)
def decoded_scan(scan_hash: str, _data: bytes, name: str) -> Scan:
    """The file decoded once (`core.io.scan.Scan`: pixels, DICOM Modality and technical header) for the gate, the
    assessment, the pictures and the DICOM panel. Keyed by content and by the name it is shown under (the
    decoder's messages quote it); few entries, because it holds full-resolution pixels and is only read until
    the results below are cached."""
    return decode_scan(_data, name)


@st.cache_data(max_entries=256, show_spinner=False)
def assess_cached(model_key: str, scan_hash: str, _entry: ModelEntry, _model: Any, _card: ModelCard, data: bytes,
                  name: str) -> Assessment:
    """The one Assessment of a file (gate, calibrated probabilities, prediction set), cached by model and file
    content: every page shows this (the CLI's `predict` path). A folder without trust.json says it is not
    calibrated."""
    trust = trust_for(str(_entry.path), _entry.key, tuple(_card.class_names))
    return classify(_model, _card, decoded_scan(scan_hash, data, name), trust=trust)


@st.cache_data(max_entries=64, show_spinner=False)
def model_input(scan_hash: str, image_size: int, data: bytes, name: str, crop: str = "none") -> np.ndarray:
    """The scan as the model sees it: float32 (S, S, 3) in 0-255."""
    return preprocess(decoded_scan(scan_hash, data, name).rgb, image_size, crop)


@st.cache_data(max_entries=64, show_spinner=False)
def display_image(scan_hash: str, data: bytes, name: str, crop: str = "none") -> np.ndarray:
    """The scan for display (RGB uint8), framed as the model sees it (`crop` from the card: the maps drawn on it
    line up), shrunk to at most DISPLAY_SIDE pixels before it is cached: the cache holds up to 64 scans, and
    full-resolution ones would keep hundreds of megabytes of server memory."""
    return fit_for_display(model_view(decoded_scan(scan_hash, data, name).rgb, crop), DISPLAY_SIDE)


@st.cache_data(max_entries=EXPLANATIONS_CACHED, show_spinner=False)
def _explanation_cached(model_key: str, scan_hash: str, method: str, class_index: int, options: str, _model: Any,
                        _card: ModelCard, _image: np.ndarray, _model_dir: str) -> Any:
    """One explanation with the method's default options (`options` is their cache key) and what the model
    folder adds (SHAP's cached background, identified by `model_key`)."""
    from core.xai.explainers import (
        explain,  # imported on first use: keeps the app's cold start short
        folder_options,
    )

    return explain(_model, _image, method, class_index=class_index, card=_card,
                   **folder_options(method, _model_dir, _card.image_size))


@dataclass
class _ExplainQueue:
    """The server's one explanation queue, and the keys of the explanations computed (most recent last; as many
    as the cache holds), which are answered from the cache without queueing."""

    queue: WorkQueue
    computed: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(show_spinner=False)
def _explain_queue() -> _ExplainQueue:
    return _ExplainQueue(WorkQueue(settings().explain_slots))


@contextlib.contextmanager
def explanation_turn(model_key: str, scan_hash: str, class_index: int, options: dict[str, str],
                     on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
    """Hold a turn of the server's explanation queue (`ui.work_queue`) while the maps of one scan (`options`:
    method -> options key) are made, unless all of them are cached already; `on_wait(ahead)` tells the page how
    many computations are ahead of it. One turn for the scan's maps, so a session's maps are made together."""
    shared = _explain_queue()
    with shared.lock:
        cached = all((model_key, scan_hash, m, class_index, o) in shared.computed for m, o in options.items())
    with contextlib.nullcontext() if cached else shared.queue.turn(on_wait):
        yield


def cached_explanation(model_key: str, scan_hash: str, method: str, class_index: int, options: str, model: Any,
                       card: ModelCard, image: np.ndarray, model_dir: str) -> Any:
    """The explanation from the cache (computed on a miss); call it inside `explanation_turn`."""
    result = _explanation_cached(model_key, scan_hash, method, class_index, options, model, card, image, model_dir)
    shared, key = _explain_queue(), (model_key, scan_hash, method, class_index, options)
    with shared.lock:
        shared.computed[key] = True
        shared.computed.move_to_end(key)
        while len(shared.computed) > EXPLANATIONS_CACHED:
            shared.computed.popitem(last=False)
    return result


@st.cache_data(max_entries=64, show_spinner=False)
def scan_metrics_cached(model_key: str, scan_hash: str, method: str, class_index: int, options: str, _model: Any,
                        _image: np.ndarray, _map: np.ndarray) -> dict[str, Any]:
    """Deletion/insertion/faithfulness of one map, cached like the explanation it measures."""
    from core.xai.metrics import evaluate_map

    return evaluate_map(_model, _image, _map, class_index, seed=0)


@st.cache_resource(show_spinner=False)
def _mask_index(masks_dir: str) -> Any:
    from core.data.masks import load_mask_index

    return load_mask_index(masks_dir)


@st.cache_data(max_entries=64, show_spinner=False)
def expert_mask(scan_hash: str, name: str, data: bytes, crop: str = "none") -> np.ndarray | None:
    """The expert tumour mask (bool), framed like the scan as the model sees it (`crop`), when this file IS a
    dataset scan that has one: the file name must be in the masks' index and the bytes must equal the dataset
    file's. None otherwise."""
    import hashlib

    from core.data.masks import default_masks_dir
    from core.training.launcher import default_data_dir

    data_root = default_data_dir()
    masks_dir = default_masks_dir(data_root)
    if masks_dir is None:
        return None
    try:
        index = _mask_index(str(masks_dir))
    except BrainScanError:
        return None
    row = index.for_name(name)
    if row is None:
        return None
    source = data_root / row.file
    if not source.is_file() or hashlib.sha256(source.read_bytes()).digest() != hashlib.sha256(data).digest():
        return None
    mask = index.load(row)
    if crop == "none":
        return mask   # drawn scaled to the picture, as before
    scan = decoded_scan(scan_hash, data, name).rgb
    return model_view(mask, crop, scan) if mask.shape == scan.shape[:2] else None


@st.cache_data(max_entries=64, show_spinner=False)
def agreement_cached(model_key: str, scan_hash: str, class_index: int, methods: tuple[str, ...],
                     _maps: dict[str, np.ndarray], _image: np.ndarray) -> Any:
    """Agreement of the shown maps (and their mass outside the head), cached with the explanations."""
    from core.xai.agreement import agreement

    return agreement(_maps, _image)


def options_key(options: dict[str, Any]) -> str:
    """Options as a stable string, for cache keys."""
    return json.dumps(options, sort_keys=True, default=str)


def scans() -> dict[str, bytes]:
    """The scans of this session (name -> file bytes), in upload order."""
    return st.session_state.setdefault(state.SCANS, {})


def set_scans(files: dict[str, bytes], selected: str | None = None) -> None:
    """Replace the session's scans and select one (the first by default)."""
    st.session_state[state.SCANS] = dict(files)
    choose_scan(selected or next(iter(files), None))


def saved_evaluation(load: Callable[[Any], dict | None], model_dir: Any, what: str) -> dict | None | bool:
    """A model folder's saved evaluation: the document, None when there is none, or False (after showing the
    reason) when it is unreadable - the rest of the page still draws."""
    try:
        return load(model_dir)
    except BrainScanError as exc:
        st.error(f"The {what} of this model cannot be shown: {exc}")
        return False


def show_file_names() -> bool:
    """Whether the user chose to see real file names (the sidebar's toggle; off by default)."""
    return bool(st.session_state.get(state.SHOW_FILE_NAMES_CHOICE, False))


def labels(unread: Iterable[str] = ()) -> dict[str, str]:
    """{file name: what the app shows and exports for it} for this session's scans (and `unread` files). The
    slices of a DICOM series keep their own labels ("Slice 3 · +5.0 mm"): the app made them, they name no one."""
    series = st.session_state.get(state.SERIES) is not None
    return scan_labels(scans(), show_file_names() or series, unread)


def _remember_file_names_choice() -> None:
    st.session_state[state.SHOW_FILE_NAMES_CHOICE] = bool(st.session_state.get(state.SHOW_FILE_NAMES))


def privacy_toggle() -> None:
    """The sidebar switch between de-identified scan labels (default) and real file names. The choice is kept
    outside the widget's own state, which Streamlit may reset when a page switches."""
    st.sidebar.toggle("Show file names", value=show_file_names(), key=state.SHOW_FILE_NAMES,
                      on_change=_remember_file_names_choice,
                      help="Off: scans are shown and exported as 'Scan 1 (hash)', because file names often hold "
                           "patient names. Files are kept in this browser session's memory only, never on disk.")


def keep_scan_choice() -> None:
    """Streamlit resets a widget's key when another page draws a widget with that key: the scan chosen in Classify's
    "Details for" was forgotten on the way to Explain (which then showed another scan). The choice lives in a key no
    widget owns, and is given to the widgets' key before every page runs (called by app.py)."""
    if state.SCAN_CHOICE in st.session_state:
        st.session_state[state.SCAN] = st.session_state[state.SCAN_CHOICE]


def remember_scan_choice() -> None:
    """on_change of every widget with key SCAN: the user's choice becomes the kept one."""
    st.session_state[state.SCAN_CHOICE] = st.session_state.get(state.SCAN)


def choose_scan(name: str | None) -> None:
    """Select a scan from code (a new upload, a series' top slice, "Explain this slice")."""
    st.session_state[state.SCAN] = st.session_state[state.SCAN_CHOICE] = name


def selected_scan() -> tuple[str, bytes] | None:
    """(name, bytes) of the scan chosen on the Classify page (remembered across pages: `keep_scan_choice`)."""
    files = scans()
    name = st.session_state.get(state.SCAN)
    if name not in files:
        name = next(iter(files), None)
    st.session_state[state.SCAN_CHOICE] = name
    return (name, files[name]) if name else None


def sample_files() -> dict[str, Path]:
    """Bundled sample scans by file name."""
    return {p.name: p for p in sample_scans()}
