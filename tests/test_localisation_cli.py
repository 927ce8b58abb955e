"""`explain --save-maps` on several files, `xai-eval --localisation` on synthetic masks, the new explainer options,
and the display helpers (SHAP smoothing, expert outline) on the tiny model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from tests.conftest import TINY_SIZE
from tests.synthetic import write_masks


def test_save_maps_writes_one_raw_map_per_file(tiny_model, tiny_model_dir, tiny_dataset, tmp_path, capsys):
    from core.io.images import load_for_model
    from core.xai.explainers import explain

    files = sorted((tiny_dataset / "Testing" / "glioma").glob("*.png"))[:2] + \
        sorted((tiny_dataset / "Testing" / "pituitary").glob("*.png"))[:1]
    out = tmp_path / "maps"
    code = main(["explain", *map(str, files), "--method", "shap", "--class", "glioma", "--model", str(tiny_model_dir),
                 "--save-maps", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [Path(s["file"]).name for s in lines] == [f.name for f in files]
    model, card = tiny_model
    for f, summary in zip(files, lines):
        saved = np.load(out / f"{f.stem}.npy")
        assert saved.dtype == np.float32 and saved.shape == (TINY_SIZE, TINY_SIZE)
        assert summary["map_file"] == str(out / f"{f.stem}.npy")
        again = explain(model, load_for_model(f, card.image_size), "shap", 0).map  # no cached background here
        assert np.allclose(saved, again, atol=1e-6)                               # raw map, same orientation


def test_save_maps_errors(tiny_model_dir, tiny_dataset, tmp_path, capsys):
    files = sorted((tiny_dataset / "Testing" / "glioma").glob("*.png"))[:2]
    assert main(["explain", *map(str, files), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o.png")]) == 2
    assert "--out writes one overlay" in capsys.readouterr().err
    twin = tmp_path / "other"
    twin.mkdir()
    shutil.copy(files[0], twin / files[0].name)
    code = main(["explain", str(files[0]), str(twin / files[0].name), "--model", str(tiny_model_dir),
                 "--save-maps", str(tmp_path / "m")])
    assert code == 2 and "share a name stem" in capsys.readouterr().err


def test_xai_eval_localisation_writes_per_class_table_with_floors(tiny_model_dir, tiny_dataset, tmp_path, capsys):
    from core.xai.localisation import load_localisation

    masks = write_masks(tiny_dataset, tmp_path / "masks")
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    argv = ["xai-eval", "--localisation", "--data", str(tiny_dataset), "--masks", str(masks), "--model",
            str(model_dir), "--n", "6", "--methods", "scorecam,lime", "--checkpoint-dir", str(tmp_path / "new" / "folder")]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "unseen" in out and "CPU" in out
    results = load_localisation(model_dir).to_json()
    summary = results["summary"]
    assert results["n_images"] == 6 and summary["all"]["per_class_n"] == {"glioma": 2, "meningioma": 2, "pituitary": 2}
    assert summary["unflagged"]["n"] == 6 - sum(r["flagged"] for r in results["records"])
    # every source id of Testing differs from Training's here only by split: "src:cls:i" exists in Training
    assert summary["unseen"]["n"] == sum(r["unseen"] for r in results["records"])
    maps = summary["all"]["maps"]
    assert set(maps) == {"scorecam", "lime", "random", "gaussian", "uniform"}
    assert set(maps["scorecam"]) >= {"energy_pointing", "pointing_hit", "rank_accuracy", "road_morf", "road_lerf"}
    assert "road_morf" not in maps["uniform"]
    area = summary["all"]["mask_area"]["mean"]
    assert maps["uniform"]["energy_pointing"]["all"]["mean"] == pytest.approx(area, rel=1e-6)
    assert results["command"].startswith("python -m core xai-eval --localisation")
    checkpoint = Path(results["checkpoint"])
    assert len(checkpoint.read_text().splitlines()) == 6
    assert main(argv) == 0                                     # a rerun reuses every record
    assert load_localisation(model_dir).records_reused == 6


def test_explainer_options_for_sharper_maps(tiny_model):
    from core.xai.explainers import explain
    from core.xai.explainers.lime_method import segment
    from core.xai.explainers.scorecam import target_layers

    model, _ = tiny_model
    yy, xx = np.mgrid[:TINY_SIZE, :TINY_SIZE]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 12 ** 2
    image = np.repeat(np.where(disc, 100.0, 2.0)[..., None], 3, axis=2).astype(np.float32)
    image[12:18, 12:18] = 240
    assert len(target_layers(model, 1, "none")) == 1
    layers = target_layers(model, 2, "product")
    assert len(layers) == 2 and model.get_layer(layers[0]).output.shape[1] >= 2 * model.get_layer(
        layers[1]).output.shape[1]
    fused = explain(model, image, "scorecam", 0, resolution=2, fusion="product")
    assert fused.map.shape == (TINY_SIZE, TINY_SIZE) and 0 <= fused.map.min() <= fused.map.max() <= 1
    assert "fused by product" in fused.note
    labels = segment(image, 20, 0.1, head_only=True)
    assert (labels[~disc] == 0).mean() > 0.9 and labels[disc].min() >= 0 and len(np.unique(labels[disc])) > 3
    lime = explain(model, image, "lime", 0, num_samples=40, hide="blur")
    assert lime.map[labels == 0].max() == 0.0 or (lime.extras["segments"] == 0).sum() == 0
    raw = explain(model, image, "shap", 0, nsamples=20, smooth_sigma=0)
    smooth = explain(model, image, "shap", 0, nsamples=20, smooth_sigma=8)
    assert smooth.map.std() < raw.map.std() and "smoothed" in smooth.note


def test_display_helpers():
    from core.xai.overlays import display_signed, draw_outline, signed_overlay

    values = np.zeros((64, 64), np.float32)
    values[32, 32], values[10, 10] = 1.0, -1.0
    smoothed = display_signed(values, 4.0)
    assert smoothed[32, 33] > 0 and smoothed.max() < 1.0
    assert display_signed(values, 0.0, positive_only=True).min() == 0.0
    image = np.full((64, 64, 3), 40, np.uint8)
    assert (signed_overlay(image, values, 1.0, 0.0, 99.0, True)[10, 10] == 40).all()  # no blue when positive only
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    outlined = draw_outline(image, mask)
    assert (outlined[32, 32] == 40).all() and (outlined[32, 14:19] == (0, 255, 0)).all(axis=1).any()
    assert (outlined[2, 2] == 40).all()
