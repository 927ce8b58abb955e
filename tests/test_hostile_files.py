"""The hostile-file corpus (tests/hostile.py) through the decoder and the CLI: one-line reasons, no tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ImageDecodeError
from core.io.images import non_finite_fraction, read_image
from core.model.gate import check_pixels
from tests.conftest import REPO
from tests.hostile import GATE, write_corpus


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
