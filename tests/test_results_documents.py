"""Typed result documents, the one home of intervals, and registry entries that own what is method-specific."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ExplainError, ModelNotFoundError
from core.model.card import CARD_FILE, ModelCard, load_card
from core.model.card_records import EvaluationRecord, TrainingRecord
from core.stats import Interval, bootstrap, mean_interval, percentile_interval, wilson
from core.xai.explainers import EXPLAINERS, folder_options, get_spec, needs_background, with_background
from core.xai.explainers.background import save_background
from core.xai.metrics import LOCALISATION, METRICS
from core.xai.results import LocalisationRecord, XaiEvaluation

BUNDLED = Path(__file__).resolve().parent.parent / "assets" / "models" / "default"
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # documents as earlier versions wrote them


def test_wilson_interval_known_values():
    assert wilson(0, 0) is None
    ci = wilson(34, 100)
    assert ci.to_list(4) == [0.2546, 0.4372]  # Wilson score interval, z = 1.96 (Newcombe 1998)
    assert wilson(0, 10).low == 0.0 and wilson(10, 10).high == 1.0


def test_bootstrap_draws_like_the_inline_loops_it_replaced():
    values = np.arange(20.0)
    rng = np.random.default_rng(3)
    expected = [values[rng.integers(0, 20, 20)].mean() for _ in range(50)]
    assert bootstrap(lambda idx: values[idx].mean(), 20, 50, seed=3) == expected
    rng = np.random.default_rng(1)
    pairs = [(rng.integers(0, 3, 3).sum(), rng.integers(0, 5, 5).sum()) for _ in range(4)]
    assert bootstrap(lambda a, b: (a.sum(), b.sum()), (3, 5), 4, seed=1) == pairs
    assert percentile_interval(expected) == Interval(float(np.percentile(expected, 2.5)),
                                                     float(np.percentile(expected, 97.5)))


def test_mean_interval_is_a_t_interval_of_the_defined_values():
    mean, ci, n = mean_interval([1.0, 2.0, 3.0, None, float("nan")])
    assert (mean, n) == (2.0, 3) and ci.to_list(4) == [-0.4841, 4.4841]  # t(0.975, 2) = 4.303
    assert mean_interval([]) == (None, None, 0) and mean_interval([5.0])[1] == Interval(5.0, 5.0)


@pytest.mark.parametrize("name, kind, indent", [("xai_eval_v1.json", XaiEvaluation, 2),
                                                ("xai_localisation_v1.json", LocalisationRecord, 1)])
def test_earlier_xai_documents_read_and_write_back_exactly(name, kind, indent):
    """The XAI documents of the model bundled until 2026-12-01, written before schema versions existed."""
    text = (FIXTURES / name).read_text()
    document = kind.from_json(json.loads(text))
    assert document.schema_version == 1  # written before the field existed
    assert json.dumps(document.to_json(), indent=indent) == text.rstrip("\n")  # older files end without one


def test_bundled_card_parts_are_typed_and_the_card_writes_back_unchanged(tmp_path):
    card = load_card(BUNDLED)
    evaluation, training = card.evaluation_record, card.training_record
    assert evaluation.to_json() == card.evaluation and training.to_json() == card.training
    test = evaluation.splits["test"]
    assert test.n == 1311 and test.intervals["accuracy"][0] < test.metrics["accuracy"] < test.intervals["accuracy"][1]
    assert evaluation.audit_summary.count("unseen") == evaluation.splits["test_unseen"].n
    assert evaluation.external_sets()["tumour_navoneel"].tumour_recall.n > 0
    assert training.cpus == 2 and training.reproduce_command.startswith("python -m train")
    ModelCard(**json.loads((BUNDLED / CARD_FILE).read_text())).save(tmp_path)
    assert (tmp_path / CARD_FILE).read_text() == (BUNDLED / CARD_FILE).read_text()


def test_newer_or_broken_documents_are_clear_errors():
    with pytest.raises(ExplainError, match="schema version 3"):
        XaiEvaluation.from_json({"schema_version": 3, "methods": {}})
    with pytest.raises(ExplainError, match="no 'methods' table"):
        XaiEvaluation.from_json({"n_images": 3})
    with pytest.raises(ExplainError, match="incomplete.*--localisation"):
        LocalisationRecord.from_json({"metrics": {}})
    with pytest.raises(ModelNotFoundError, match="evaluation has schema version 9"):
        EvaluationRecord.from_json({"schema_version": 9})
    assert TrainingRecord.from_json(None).to_json() == {}


def test_registry_entries_own_what_is_method_specific(tmp_path):
    assert {n: s.overlay for n, s in EXPLAINERS.items()} == {"scorecam": "heatmap", "shap": "signed",
                                                             "lime": "regions"}
    assert needs_background(["shap"]) and not needs_background(["scorecam", "lime"])
    background = np.zeros((2, 8, 8, 3), np.float32)
    options = with_background(["scorecam", "shap"], background, {"shap": {"nsamples": 4}})
    assert options["scorecam"] == {} and options["shap"]["background"] is background
    recorded = get_spec("shap").recorded(options["shap"])
    assert recorded["background"] == "array(2, 8, 8, 3)" and recorded["nsamples"] == 4
    assert folder_options("shap", tmp_path, 8) == {} and folder_options("lime", tmp_path, 8) == {}
    save_background(tmp_path, background.astype(np.uint8))
    assert folder_options("shap", tmp_path, 8)["background"].shape == (2, 8, 8, 3)


def test_metric_registry_declares_the_table_columns():
    from ui.presentation import LOCALISATION_COLUMNS, XAI_COLUMNS

    for name, spec in METRICS.items():
        assert spec.plain and spec.term and XAI_COLUMNS[name].endswith("↑)" if spec.higher_is_better else "↓)")
    assert all(LOCALISATION_COLUMNS[name].startswith(spec.plain) for name, spec in LOCALISATION.items())
