"""Atomic writes of the artefacts the app reads while they may change: card, xai_eval.json, SHAP background."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from core.errors import ExplainError
from core.io.atomic import atomic_write_text, atomic_write_with
from core.model.card import CARD_FILE, ModelCard, load_card
from core.xai.evaluation import RESULTS_FILE, load_results, save_results
from core.xai.explainers.background import BACKGROUND_FILE, load_background, save_background


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "file.json"
    atomic_write_text(target, "old")

    def explode(handle):
        handle.write(b"half of the new cont")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, explode)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["file.json"]


def test_every_artefact_writer_goes_through_a_rename(tmp_path, monkeypatch):
    """The card, the XAI results and the SHAP background are each published by one os.replace."""
    replaced = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(os.path.basename(dst)), real(src, dst)))
    ModelCard(["a", "b"], 8, "TinyCNN", "none", "conv").save(tmp_path)
    save_results(tmp_path, {"methods": {}})
    save_background(tmp_path, np.zeros((2, 8, 8, 3), np.uint8))
    assert replaced == [CARD_FILE, RESULTS_FILE, BACKGROUND_FILE]
    assert load_card(tmp_path).class_names == ["a", "b"]
    assert load_results(tmp_path).methods == {}
    assert load_background(tmp_path, 8).shape == (2, 8, 8, 3)
    assert sorted(os.listdir(tmp_path)) == sorted([CARD_FILE, RESULTS_FILE, BACKGROUND_FILE])


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x93NUMPY garbage", b"random bytes" * 10])
def test_a_corrupt_background_is_a_clear_error(tmp_path, content):
    (tmp_path / BACKGROUND_FILE).write_bytes(content)
    with pytest.raises(ExplainError, match="unreadable.*delete it to rebuild"):
        load_background(tmp_path, 8)


def test_a_background_without_images_is_a_clear_error(tmp_path):
    with zipfile.ZipFile(tmp_path / BACKGROUND_FILE, "w") as archive:
        archive.writestr("other.npy", b"")
    with pytest.raises(ExplainError, match="unreadable"):
        load_background(tmp_path, 8)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", json.dumps({"methods": [1]}), "\udcff"])
def test_corrupt_xai_results_are_a_clear_error(tmp_path, content):
    (tmp_path / RESULTS_FILE).write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ExplainError, match="xai-eval"):
        load_results(tmp_path)
