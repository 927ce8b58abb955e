"""The hostile-file corpus (tests/hostile.py) through the decoder, the data loader, the CLI and the app's upload
path: every bad file gives one line with its reason, never a traceback; blank and NaN/inf images are decoded and
refused by the input gate (an answer, not an error); the valid controls are classified."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.discovery import Sample, discover, load_samples
from core.errors import ImageDecodeError
from core.io.images import non_finite_fraction, read_image
from core.io.series import is_dicom
from core.model.gate import check_pixels
from tests.conftest import REPO
from tests.hostile import GATE, uploadable, write_corpus
from ui import state


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return folder, write_corpus(folder)


def test_every_hostile_file_gets_a_one_line_reason_from_the_decoder(corpus):
    folder, expected = corpus
    assert len(expected) >= 25
    for name, reason in expected.items():
        path = folder / name
        if reason is None:
            assert read_image(path).ndim == 3, name
        elif reason == GATE:
            data = path.read_bytes()
            refusal = check_pixels(read_image(data, name), non_finite_fraction(data))
            assert refusal is not None, name
        else:
            with pytest.raises(ImageDecodeError) as info:
                read_image(path)
            message = str(info.value)
            assert reason in message and "\n" not in message, (name, message)


def test_the_cli_answers_every_hostile_file_without_a_traceback(corpus, tiny_model_dir):
    folder, expected = corpus
    files = [str(folder / name) for name in sorted(expected)]
    result = subprocess.run([sys.executable, "-m", "core", "predict", *files, "--model", str(tiny_model_dir), "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    answers = {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert result.returncode == 1                       # malformed files keep their non-zero exit
    assert len(errors) + len(answers) == len(expected)
    for name, reason in expected.items():
        if reason is None:
            assert answers[name]["refusal"] is None, name
        elif reason == GATE or name in answers:          # the gate refuses before decoding (e.g. a DICOM report)
            assert answers[name]["refusal"] and answers[name]["predicted_class"] is None, name
        else:
            assert any(name in line and reason in line for line in errors), name


def test_the_data_loader_skips_and_counts_every_undecodable_file(corpus, tmp_path):
    folder, expected = corpus
    undecodable = [n for n, reason in expected.items() if reason and reason != GATE]
    loaded = load_samples([Sample(folder / name, 0) for name in expected], 32)
    assert len(loaded.skipped) == len(undecodable)
    assert all("\n" not in reason for reason in loaded.skipped)
    assert sorted(s.path.name for s in loaded.samples) == sorted(n for n in expected if n not in undecodable)
    # a dataset folder holding the whole corpus is still discovered and loaded
    for split in ("Training", "Testing"):
        for cls in ("a", "b"):
            target = tmp_path / split / cls
            target.mkdir(parents=True)
            for name in expected:
                source = folder / name
                link = target / name
                if source.is_symlink():
                    link.symlink_to(os.readlink(source))
                elif source.is_dir():
                    link.mkdir()
                else:
                    link.symlink_to(source)
    index = discover(tmp_path)
    loaded = load_samples(index.splits["Testing"], 32)
    assert len(loaded.samples) == 2 * (len(expected) - len(undecodable))
    assert loaded.skipped


def _upload(files: dict[str, bytes], model_dir: Path, runs: Path, monkeypatch, show_names: bool) -> AppTest:
    monkeypatch.setenv("BRAINSCAN_MODEL", str(model_dir))
    monkeypatch.setenv("BRAINSCAN_RUNS", str(runs))
    monkeypatch.setenv("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "full")
    monkeypatch.chdir(REPO)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    if show_names:
        at.sidebar.toggle(key=state.SHOW_FILE_NAMES).set_value(True).run()
    at.file_uploader(key=state.uploads_key(0)).set_value(
        [(n, d, "application/octet-stream") for n, d in files.items()]).run()
    assert not at.exception, (list(files), [(e.message, e.stack_trace) for e in at.exception])
    return at


@pytest.mark.parametrize("show_names", [False, True])
def test_the_apps_upload_path_gives_one_line_per_bad_file(corpus, tiny_model_dir, tmp_path, monkeypatch, show_names):
    folder, expected = corpus
    files = {n: d for n, d in uploadable(folder, expected).items() if not is_dicom(d)}  # DICOMs: a series, below
    at = _upload(files, tiny_model_dir, tmp_path / "runs", monkeypatch, show_names)
    errors = [e.value for e in at.error]
    bad = [n for n in files if expected[n] and expected[n] != GATE]
    assert len(errors) == len(bad), errors
    assert all("\n" not in e for e in errors)
    for name in bad:
        assert any(expected[name] in e for e in errors), name
    assert any(name in e for e in errors for name in files) == show_names
    table = at.dataframe[0].value
    assert len(table) == len(files)                    # one row per upload: an answer, a refusal or the error
    if not show_names:
        assert all(f.startswith("Scan ") for f in table["file"])
        assert not any(name in str(at.main) for name in files)


def test_the_apps_upload_path_answers_each_hostile_dicom(corpus, tiny_model_dir, tmp_path, monkeypatch):
    folder, expected = corpus
    dicoms = {n: d for n, d in uploadable(folder, expected).items() if is_dicom(d)}
    assert len(dicoms) >= 3
    for name, data in dicoms.items():
        at = _upload({name: data}, tiny_model_dir, tmp_path / "runs", monkeypatch, False)
        errors = [e.value for e in at.error]
        if expected[name] and expected[name] != GATE:          # one line: its reason, or the gate's refusal
            assert len(errors) == 1 and "\n" not in errors[0], (name, errors)   # (e.g. a DICOM report: "Not an MRI")
            assert expected[name] in errors[0] or errors[0].startswith("**Not"), (name, errors)
