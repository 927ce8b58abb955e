"""`python -m core explain` and `xai-eval` end to end on the tiny model and synthetic data."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from core.cli import main
from core.errors import ExplainError
from tests.conftest import REPO, TINY_SIZE


@pytest.fixture(scope="module")
def scan(tiny_dataset: Path) -> Path:
    return sorted((tiny_dataset / "Testing" / "glioma").glob("*.png"))[0]


def test_explain_cli_end_to_end(tiny_model_dir, scan, tmp_path):
    out = tmp_path / "overlay.png"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "core", "explain", str(scan), "--method", "scorecam",
                           "--model", str(tiny_model_dir), "--out", str(out), "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["method"] == "scorecam" and summary["class_name"] in ("glioma", "meningioma", "notumor", "pituitary")
    assert 0 <= summary["map"]["min"] <= summary["map"]["max"] <= 1 and summary["seconds"] > 0
    picture = cv2.imread(str(out))
    assert picture.shape == (TINY_SIZE, 2 * TINY_SIZE + 4, 3)


@pytest.mark.parametrize("argv_tail, message", [
    (["--method", "lime", "--class", "pituitary"], None),
    (["--method", "nosuch"], "unknown explanation method 'nosuch'"),
    (["--class", "astrocytoma"], "--class must be one of"),
])
def test_explain_options_and_errors(tiny_model_dir, scan, capsys, argv_tail, message):
    code = main(["explain", str(scan), "--model", str(tiny_model_dir), "--json", *argv_tail])
    captured = capsys.readouterr()
    if message is None:
        assert code == 0
        summary = json.loads(captured.out.strip().splitlines()[-1])
        assert summary["class_name"] == "pituitary" and summary["method"] == "lime"
    else:
        assert code == 2 and f"error: {message}" in captured.err


def test_explain_a_bad_file_prints_error_and_fails(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "scan.jpg"
    bad.write_bytes(b"not an image")
    assert main(["explain", str(bad), "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a readable image" in err


def test_xai_eval_writes_the_dashboard_schema(tiny_model_dir, tiny_dataset, tmp_path, capsys, monkeypatch):
    from core.xai.evaluation import load_results

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    monkeypatch.setenv("BRAINSCAN_QUICK", "1")
    code = main(["xai-eval", "--data", str(tiny_dataset), "--model", str(model_dir), "--n", "4",
                 "--sanity-n", "1", "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    results = load_results(model_dir).to_json()
    assert (model_dir / "shap_background.npz").is_file()
    assert results["n_images"] == 4 and results["seed"] == 3 and results["settings"]["quick"] is True
    assert results["schema_version"] == 2  # metric options per metric: --quick coarsens each metric's own steps
    assert results["settings"]["metric_options"]["deletion_auc"]["steps"] == 10
    assert results["command"].startswith("python -m core xai-eval --data ") and results["command"].endswith("--quick")
    assert set(results["metrics"]) == {"deletion_auc", "insertion_auc", "faithfulness_correlation", "road_morf",
                                       "road_lerf"}
    assert set(results["methods"]) == {"scorecam", "shap", "lime", "random", "gaussian"}
    composition = results["settings"]["sample"]["per_class"]
    assert sum(v["correct"] + v["wrong"] for v in composition.values()) == 4
    for name, row in results["methods"].items():
        assert row["kind"] == ("baseline" if name in ("random", "gaussian") else "method")
        assert ("sanity_rank_correlation" in row) == (row["kind"] == "method")
        for metric in ("deletion_auc", "insertion_auc", "seconds_per_image"):
            if row[metric]["mean"] is None:  # every curve saturated: no mean, only the count
                assert row[metric]["saturated"] == 4
                continue
            lo, hi = row[metric]["ci95"]
            assert lo <= row[metric]["mean"] <= hi
        assert sum(c["n"] for c in row["per_class"].values()) == 4
    assert "saved" in capsys.readouterr().out


def test_xai_eval_rejects_a_model_whose_classes_differ(tiny_model_dir, tmp_path, capsys):
    from tests.synthetic import write_dataset

    data = write_dataset(tmp_path / "d", n_train=1, n_test=1)
    (data / "Training" / "glioma").rename(data / "Training" / "astro")
    (data / "Testing" / "glioma").rename(data / "Testing" / "astro")
    assert main(["xai-eval", "--data", str(data), "--model", str(tiny_model_dir), "--n", "4"]) == 2
    assert "differ from the model's" in capsys.readouterr().err
    assert not (tiny_model_dir / "shap_background.npz").exists()


def test_load_results_is_none_without_an_evaluation(tmp_path):
    from core.xai.evaluation import load_results

    assert load_results(tmp_path) is None


def test_folder_options_give_shap_the_cached_background_only(tiny_model_dir, tmp_path):
    import numpy as np

    from core.xai.explainers import folder_options
    from core.xai.explainers.background import save_background

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    assert folder_options("shap", model_dir, TINY_SIZE) == {}
    save_background(model_dir, np.zeros((4, TINY_SIZE, TINY_SIZE, 3), np.uint8))
    background = folder_options("shap", model_dir, TINY_SIZE)["background"]
    assert background.shape == (4, TINY_SIZE, TINY_SIZE, 3) and background.dtype == np.float32
    assert folder_options("scorecam", model_dir, TINY_SIZE) == folder_options("lime", model_dir, TINY_SIZE) == {}
    with pytest.raises(ExplainError, match="delete it to rebuild"):
        folder_options("shap", model_dir, TINY_SIZE * 2)


@pytest.mark.parametrize("out, message", [("overlay", "ending in"), ("overlay.svg", "ending in"),
                                          ("missing/overlay.png", "does not exist")])
def test_explain_out_without_an_image_extension_is_a_clear_error(tiny_model_dir, scan, tmp_path, capsys, out,
                                                                 message):
    assert main(["explain", str(scan), "--model", str(tiny_model_dir), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / out).exists()
