"""External validation: sets in the external-eval layout, truth from labels and notes, Wilson intervals."""
from __future__ import annotations

import json

import cv2
import pytest

from core.cli import main
from core.errors import DataLayoutError
from core.evaluation.external import evaluate_external, find_sets, proportion, truth
from core.model.inference import classify
from tests.synthetic import synthetic_scan


def _external(root, rng):
    tumours, normals = root / "tumours", root / "normals"
    for folder in (tumours, normals):
        folder.mkdir(parents=True)
    rows = ["file,label,source,notes"]
    for i in range(3):
        cv2.imwrite(str(tumours / f"t{i}.png"), synthetic_scan("meningioma", 48, rng))
        rows.append(f"t{i}.png,tumour,synthetic,a tumour")
    (tumours / "labels.csv").write_text("\n".join(rows + ["broken.png,tumour,synthetic,missing file"]) + "\n")
    rows = ["file,label,source,notes"]
    for i, plane in enumerate(("ax", "ax", "co")):
        cv2.imwrite(str(normals / f"n{i}.png"), synthetic_scan("notumor", 48, rng))
        rows.append(f'n{i}.png,notumor,synthetic,"normal, plane={plane}"')
    (normals / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_truth_and_intervals():
    classes = ["glioma", "meningioma", "notumor", "pituitary"]
    assert truth("tumour", "", classes) == "tumour" and truth("notumor", "", classes) == "normal"
    assert truth("near_ood", "T2-FLAIR; truth: glioma (adult)", classes) == "tumour"
    assert truth("brain_other", "full head; no tumour", classes) == "normal"
    assert truth("far_ood", "a cat", classes) is None
    p = proportion(34, 100)
    assert p["value"] == 0.34 and p["ci95"] == pytest.approx([0.2541, 0.4379], abs=1e-3)   # Wilson
    assert proportion(0, 0)["value"] is None


def test_evaluate_external_matches_per_file_predictions(tiny_model, tmp_path, rng):
    model, card = tiny_model
    root = _external(tmp_path / "ext", rng)
    assert list(find_sets(root)) == ["normals", "tumours"] and list(find_sets(root / "normals")) == ["normals"]
    results = evaluate_external(model, card, root)
    tumours, normals = results["tumours"], results["normals"]
    assert tumours["n"] == 3 and len(tumours["skipped"]) == 1 and "broken.png" in tumours["skipped"][0]
    called = [classify(model, card, root / "tumours" / f"t{i}.png").predicted for i in range(3)]
    assert tumours["tumour_recall"]["k"] == sum(c != "notumor" for c in called)
    assert "notumor_specificity" not in tumours and "tumour_recall" not in normals
    assert set(normals["per_plane"]) == {"axial", "coronal"} and normals["per_plane"]["axial"]["n"] == 2
    assert sum(normals["predicted"].values()) == 3


def test_cli_evaluate_external(tiny_model_dir, tmp_path, rng, capsys):
    root = _external(tmp_path / "ext", rng)
    assert main(["evaluate-external", str(root), "--model", str(tiny_model_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"normals", "tumours"} and "predictions" not in out["tumours"]
    assert main(["evaluate-external", str(tmp_path), "--model", str(tiny_model_dir)]) == 2
    assert "labels.csv" in capsys.readouterr().err
    with pytest.raises(DataLayoutError):
        find_sets(tmp_path / "nowhere")
