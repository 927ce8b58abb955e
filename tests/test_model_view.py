"""Maps are drawn and scored in the frame the model sees: with a head-cropping model (card crop "head") the
Explain page's and the report's picture, and every expert mask, are cropped exactly as the model input is."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from core.data.masks import MaskIndex, MaskRow
from core.io.images import model_view, preprocess
from core.xai.localisation import load_scans


def _scan_and_mask() -> tuple[np.ndarray, np.ndarray]:
    """A 120×200 slice: a head off-centre in a wide black frame, a bright tumour inside it, and the tumour's mask."""
    scan = np.zeros((120, 200, 3), np.uint8)
    cv2.ellipse(scan, (130, 60), (45, 50), 0, 0, 360, (90, 90, 90), -1)
    cv2.circle(scan, (150, 45), 10, (250, 250, 250), -1)
    mask = np.zeros((120, 200), np.uint8)
    cv2.circle(mask, (150, 45), 10, 255, -1)
    return scan, mask


def test_a_mask_framed_like_its_scan_stays_on_the_tumour():
    scan, mask = _scan_and_mask()
    assert model_view(scan, "none") is scan
    view, framed = model_view(scan, "head"), model_view(mask, "head", scan)
    assert view.shape[:2] == framed.shape and view.shape[0] == view.shape[1] < 120   # square, the frame cut away
    assert view[framed > 0].min() == 250 and (framed > 0).sum() == (mask > 0).sum()    # the same pixels, moved
    with pytest.raises(ValueError, match="unknown crop"):
        model_view(scan, "brain")


def test_localisation_scans_and_masks_are_cropped_like_the_model_input(tmp_path):
    scan, mask = _scan_and_mask()
    (tmp_path / "data" / "Testing" / "glioma").mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "data" / "Testing" / "glioma" / "a.png"), scan)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    row = MaskRow("Testing", "glioma", "Testing/glioma/a.png", "a.png", float((mask > 0).mean()), "", "src-a")
    index = MaskIndex(tmp_path / "masks", [row])
    for crop in ("none", "head"):
        loaded = load_scans(index, [row], tmp_path / "data", ["glioma", "notumor"], 64, crop)[0]
        np.testing.assert_array_equal(loaded.image, preprocess(scan, 64, crop))
        assert loaded.image[loaded.mask].mean() > 200, crop   # the mask sits on the bright tumour in either frame
    wrong = dataclasses.replace(row, mask="small.png")
    cv2.imwrite(str(tmp_path / "masks" / "small.png"), mask[:60, :100])
    with pytest.raises(Exception, match="a mask must have its scan's geometry"):
        load_scans(MaskIndex(tmp_path / "masks", [wrong]), [wrong], tmp_path / "data", ["glioma"], 64, "head")


def test_the_report_draws_the_maps_on_the_scan_as_a_head_cropping_model_sees_it(tiny_model, tiny_model_dir, tmp_path):
    import shutil

    from core.model.card import load_card
    from core.report.case import make_case_report

    folder = tmp_path / "head-model"
    shutil.copytree(tiny_model_dir, folder)
    card = load_card(folder)
    card.preprocessing = {**card.preprocessing, "crop": "head"}
    card.save(folder)
    assert load_card(folder).crop == "head"
    scan, _ = _scan_and_mask()
    ok, png = cv2.imencode(".png", scan)
    _, report = make_case_report(tiny_model[0], card, folder, {"a.png": png.tobytes()}, "case-1", methods=("scorecam",))
    picture = report.scans[0].image
    assert picture.shape[0] == picture.shape[1] and picture.shape[:2] != scan.shape[:2]
    assert report.scans[0].overlays and report.scans[0].overlays[0].overlay.shape == picture.shape
