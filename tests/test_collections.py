"""Training collections beside the Kaggle layout: the Br35H-style tumour collection (split by near-duplicate group,
partial labels, balanced by image or by group), the normal pool, and the set-valued loss they train with."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.data.collections import PARTIAL_TUMOUR, balanced_by_group, normal_pool, tumour_collection
from core.errors import DataLayoutError, TrainingConfigError
from core.training import partial
from core.training.config import TrainConfig, validate

GROUP_SIZES = [28, 10, 5, 3, 1, 1, 1, 1]   # like Br35H's dup_groups: a few large, many single slices


def _collection(root: Path, rows: list[dict[str, str]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def _tumours(root: Path) -> Path:
    rows = [{"file": f"images/tumour/g{g}_{k}.jpg", "label": "tumour", "use": "train", "dup_group": str(g)}
            for g, size in enumerate(GROUP_SIZES) for k in range(size)]
    rows += [{"file": "images/tumour/held.jpg", "label": "tumour", "use": "eval", "dup_group": "99"},
             {"file": "images/no/n1.jpg", "label": "no_tumour", "use": "train", "dup_group": "98"}]
    return _collection(root, rows)


def _group(sample) -> str:
    return Path(sample.path).name.split("_")[0]


def test_tumour_collection_reads_train_tumours_splits_whole_groups_and_labels_them_partial(tmp_path):
    part = tumour_collection(_tumours(tmp_path / "br35h"), val_fraction=0.1, seed=0)
    everything = part.train + part.validation
    assert len(everything) == sum(GROUP_SIZES) and part.groups == len(GROUP_SIZES)
    assert {s.label for s in everything} == {PARTIAL_TUMOUR}
    assert not {"held.jpg", "n1.jpg"} & {Path(s.path).name for s in everything}  # use=eval and no-tumour rows stay out
    assert not {_group(s) for s in part.train} & {_group(s) for s in part.validation}  # never inside a group
    assert len(part.validation) >= round(0.1 * sum(GROUP_SIZES))
    assert [s for g in part.train_groups for s in g] == part.train
    assert tumour_collection(tmp_path / "br35h", 0.1, seed=0) == part   # seeded


def test_balanced_by_group_gives_every_group_the_same_share_of_the_draws(tmp_path):
    groups = tumour_collection(_tumours(tmp_path / "br35h"), val_fraction=0.0, seed=0).train_groups
    draws = balanced_by_group(groups, total=2 * sum(GROUP_SIZES))
    assert len(draws) == 2 * sum(GROUP_SIZES) == 100
    per_group = Counter(_group(s) for s in draws)
    assert sorted(per_group.values()) == [12, 12, 12, 12, 13, 13, 13, 13]   # 100 draws over 8 groups
    big = next(g for g in groups if len(g) == 28)
    big_draws = Counter(Path(s.path).name for s in draws if _group(s) == _group(big[0]))
    assert set(big_draws.values()) == {1} and len(big_draws) in (12, 13)   # its share cycles through its slices
    single = next(g for g in groups if len(g) == 1)
    assert sum(1 for s in draws if s == single[0]) in (12, 13)


def test_normal_pool_is_labelled_no_tumour_and_a_folder_without_index_is_refused(tmp_path):
    pool = _collection(tmp_path / "brisc", [{"file": "a.jpg", "use": "train"}, {"file": "b.jpg", "use": "eval"},
                                            {"file": "c.jpg", "use": "train_extra"}])
    assert [(Path(s.path).name, s.label) for s in normal_pool(pool, no_tumour_label=2)] == [("a.jpg", 2), ("c.jpg", 2)]
    with pytest.raises(DataLayoutError, match="no index.csv"):
        normal_pool(tmp_path, 2)
    no_groups = _collection(tmp_path / "nogroups", [{"file": "a.jpg", "label": "tumour", "use": "train"}])
    with pytest.raises(DataLayoutError, match="dup_group"):
        tumour_collection(no_groups, 0.1, 0)


def test_an_unknown_balance_is_refused_before_any_work(tmp_path):
    with pytest.raises(TrainingConfigError, match="tumour_balance must be one of image, group"):
        validate(TrainConfig(data=str(tmp_path), tumour_balance="patient"))


def test_partial_targets_and_the_set_loss_teach_not_no_tumour():
    labels = np.array([0, PARTIAL_TUMOUR, 2])
    rows = partial.targets(labels, num_classes=4, no_tumour=2)
    np.testing.assert_array_equal(rows, [[1, 0, 0, 0], [1, 1, 0, 1], [0, 0, 1, 0]])
    loss_cls, accuracy = partial.register()
    proba = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.2, 0.5, 0.1], [0.1, 0.1, 0.6, 0.2]], np.float32)
    loss = np.asarray(loss_cls(reduction=None)(rows, proba))
    np.testing.assert_allclose(loss, [-np.log(0.7), -np.log(1 - 0.5), -np.log(0.6)], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(accuracy(rows, proba)), [1, 0, 1])   # "no tumour" on a tumour: wrong
    with pytest.raises(ValueError, match="no-tumour class"):
        partial.targets(labels, num_classes=4, no_tumour=-1)
