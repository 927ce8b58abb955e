"""The card's trust part reads into typed records and writes back exactly (no model is loaded)."""
import json
from pathlib import Path

from core.model.card_records import EvaluationRecord
from core.model.trust_records import Calibration, GateOnSet, TrustRecord

CARD = Path(__file__).resolve().parents[1] / "assets" / "models" / "default" / "model_card.json"


def test_bundled_trust_part_round_trips_exactly():
    raw = json.loads(CARD.read_text())["evaluation"]["trust"]
    record = TrustRecord.from_json(raw)
    assert json.dumps(record.to_json()) == json.dumps(raw)
    assert record.gate_score == "oe_head" and record.test.conformal.n == 1311
    assert record.test.calibration_after.per_class["glioma"].n == 300
    assert record.external["far_ood"].refused == 0.9 and record.external["far_ood"].auroc_ci95 is not None
    assert record.risk_coverage.conformal[0].confidence == 0.5


def test_evaluation_record_types_trust_and_still_round_trips():
    raw = json.loads(CARD.read_text())["evaluation"]
    evaluation = EvaluationRecord.from_json(raw)
    assert isinstance(evaluation.trust, TrustRecord)
    assert evaluation.to_json() == raw
    far = evaluation.gate_refusals("far_ood")
    assert far is not None and far.value == 0.9 and far.n == 130 and far.k == 117
    assert evaluation.gate_refusals("nowhere") is None


def test_absent_parts_read_as_empty_and_nulls_survive():
    record = TrustRecord.from_json({"temperature": 1.2, "external": {"x": {"n": 3, "auroc": None}}})
    assert record.test is None and record.risk_coverage is None and record.split("test_unseen") is None
    assert record.external["x"].auroc is None and record.external["x"].refused is None
    assert record.to_json() == {"temperature": 1.2, "external": {"x": {"n": 3, "auroc": None}}}
    assert TrustRecord.from_json(None) == TrustRecord() and EvaluationRecord.from_json({}).trust is None
    assert Calibration.from_json({"ece": 0.1, "new_key": [1]}).to_json() == {"ece": 0.1, "new_key": [1]}
    exact = {"n": 2, "coverage": 1, "coverage_ci95": [0, 1]}
    assert json.dumps(TrustRecord.from_json({"test": {"conformal": exact}}).to_json()) == \
        json.dumps({"test": {"conformal": exact}})
    assert GateOnSet(n=4, refused=0.5).to_json()["n"] == 4
