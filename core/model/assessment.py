"""The one assessment of a scan, which every surface renders: screen, table, CSV, PDF, audit trail, CLI JSON.

An `Assessment` holds what the input gate decided (with its reason), the network's and the calibrated
probabilities, the conformal prediction set and the model's identity; its `state` comes from one state machine
(`assessment_state`) with the thresholds here and in the README:

- refused: the input gate refused the scan; no class, no probabilities, no set are given.
- no_class: calibrated, and the prediction set is empty: no class is plausible enough.
- several: calibrated, and the set holds several classes (or one that is not the most probable).
- low_confidence: one plausible class, but its probability is below LOW_CONFIDENCE_BELOW.
- confident: one plausible class with at least that probability.

In the uncertain states (no_class, several) the headline is the state, never the top class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from core.model.card import class_label

LOW_CONFIDENCE_BELOW = 0.70  # the top probability under which an answer is flagged "low confidence"
SCHEMA_VERSION = 1


class State(str, Enum):
    """Where an assessment stands, from "do not read a class at all" to "one confident class"."""

    REFUSED = "refused"
    NO_CLASS = "no_class"
    SEVERAL = "several"
    LOW_CONFIDENCE = "low_confidence"
    CONFIDENT = "confident"


STATE_TITLES = {
    State.REFUSED: "Not classified (refused by the input gate)",
    State.NO_CLASS: "Uncertain: no class is plausible",
    State.SEVERAL: "Uncertain: several classes are plausible",
    State.LOW_CONFIDENCE: "Low confidence",
    State.CONFIDENT: "Confident",
}
UNCERTAIN_STATES = (State.NO_CLASS, State.SEVERAL)
REFUSAL_TITLES = {"metadata": "Not an MRI", "learned": "Not a brain MRI slice"}


def percent(p: float) -> str:
    """A probability as a percentage that never claims certainty: '>99.9%', '<0.1%', '87.3%'."""
    if p >= 0.9995:
        return ">99.9%"
    if p < 0.0005:
        return "<0.1%"
    return f"{p:.1%}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def assessment_state(refused: bool, top: str | None, confidence: float | None,
                     prediction_set: tuple[str, ...] | None) -> State:
    """The one state machine (see the module docstring)."""
    if refused or top is None or confidence is None:
        return State.REFUSED
    if prediction_set is not None:
        if not prediction_set:
            return State.NO_CLASS
        if len(prediction_set) > 1 or prediction_set[0] != top:
            return State.SEVERAL
    return State.LOW_CONFIDENCE if confidence < LOW_CONFIDENCE_BELOW else State.CONFIDENT


@dataclass(frozen=True)
class Assessment:
    """One scan's answer: gate verdict, probabilities, prediction set, state and the model that gave it.

    `class_names` fixes the order of `calibrated` and `raw`. Without a fitted model folder (`calibrated_model`
    False) `calibrated` holds the network's own probabilities and `prediction_set` is None. A refused scan keeps
    the values the forward pass gave (empty when its pixels were never decoded) for measuring the gate and the
    calibration only: `probabilities`, `predicted` and `confidence`, which every surface reads, are empty/None.
    """

    file: str
    class_names: tuple[str, ...]
    calibrated: tuple[float, ...] = ()
    raw: tuple[float, ...] = ()
    calibrated_model: bool = False
    prediction_set: tuple[str, ...] | None = None
    refusal: str | None = None
    refusal_layer: str | None = None
    ood_score: float | None = None
    decoded: bool = True
    model: str = ""
    engine: str = ""
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    @property
    def in_distribution(self) -> bool:
        return not self.refused

    @property
    def probabilities(self) -> dict[str, float]:
        """{class: probability} as shown (calibrated when the model folder is); {} for a refused scan."""
        return {} if self.refused else dict(zip(self.class_names, self.calibrated))

    @property
    def raw_probabilities(self) -> dict[str, float]:
        """The network's own probabilities; {} for a refused scan."""
        return {} if self.refused else dict(zip(self.class_names, self.raw))

    @property
    def predicted(self) -> str | None:
        """The most probable class, or None for a refused scan."""
        if self.refused or not self.calibrated:
            return None
        return self.class_names[max(range(len(self.calibrated)), key=self.calibrated.__getitem__)]

    @property
    def confidence(self) -> float | None:
        return None if self.refused or not self.calibrated else max(self.calibrated)

    @property
    def answer(self) -> str | None:
        """The class that may be shown as the headline: None when refused or uncertain."""
        return None if self.uncertain else self.predicted  # predicted is None for a refused scan

    @property
    def state(self) -> State:
        return assessment_state(self.refused, self.predicted, self.confidence, self.prediction_set)

    @property
    def uncertain(self) -> bool:
        return self.state in UNCERTAIN_STATES

    @property
    def refusal_title(self) -> str:
        layer = self.refusal_layer or ""
        return REFUSAL_TITLES.get(layer, "Not a usable scan" if layer.startswith("image") else "Not answered")

    @property
    def headline(self) -> str:
        """What a surface shows first: the class for a (low-)confident answer, otherwise the state in words."""
        state = self.state
        if state is State.REFUSED:
            return f"{self.refusal_title}: not classified"
        if state is State.NO_CLASS:
            return "Uncertain: no class is plausible"
        if state is State.SEVERAL:
            return f"Uncertain: {_join(self._set_names())}"
        return class_label(self.predicted or "")

    @property
    def state_text(self) -> str:
        """The state's title, as the table, the CSV and the PDF print it."""
        return STATE_TITLES[self.state]

    def _set_names(self) -> list[str]:
        members = list(self.prediction_set or ())
        if self.state is State.SEVERAL and self.predicted not in members:
            members = [self.predicted or "", *members]
        return [class_label(c) for c in members]

    @property
    def warnings(self) -> tuple[str, ...]:
        """The plain-language caveats of this answer (empty for a confident one)."""
        state = self.state
        if state is State.REFUSED:
            return (f"{self.refusal_title}. {self.refusal}",)
        out = []
        if state is State.NO_CLASS:
            out.append("No class is plausible enough at the chosen coverage (empty prediction set): the scan is "
                       "unusual for this model. The probabilities below are shown for reference only; rely on the "
                       "full radiological reading.")
        elif state is State.SEVERAL:
            names = [n.lower() if n != "No tumour" else "no tumour" for n in self._set_names()]
            out.append(f"The model cannot tell {_join(names)} apart here: each stays plausible at the chosen "
                       "coverage. Rely on the full radiological reading.")
        elif state is State.LOW_CONFIDENCE:
            out.append(f"Low confidence: the top probability ({percent(self.confidence or 0.0)}) is below "
                       f"{LOW_CONFIDENCE_BELOW:.0%}. Rely on the full radiological reading.")
        if not self.calibrated_model:
            out.append("This model folder is not calibrated (no input-gate score, no prediction set): run "
                       "`python -m core calibrate`.")
        return tuple(out)

    def set_text(self) -> str:
        """The prediction set in words ('' when the model is not calibrated or the scan refused)."""
        if self.refused or self.prediction_set is None:
            return ""
        return ", ".join(class_label(c) for c in self.prediction_set) or "empty"

    def gate_text(self) -> str:
        """The input gate's verdict in words."""
        if self.refused:
            return f"refused: {self.refusal}"
        if self.calibrated_model:
            return "accepted (looks like the scans the model knows)"
        return "pixel rules passed (no learned gate: the model folder is not calibrated)"

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable record: `predict --json`, the audit trail and the batch rows use exactly this."""
        refused = self.refused
        return {"file": self.file, "schema_version": self.schema_version, "model": self.model,
                "engine": self.engine,
                "state": self.state.value, "headline": self.headline,
                "predicted_class": self.answer,
                "top_class": None if refused else self.predicted,
                "confidence": None if refused or self.confidence is None else round(self.confidence, 6),
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
                "raw_probabilities": {k: round(v, 6) for k, v in self.raw_probabilities.items()},
                "in_distribution": self.in_distribution, "decoded": self.decoded,
                "ood_score": None if self.ood_score is None else round(self.ood_score, 6),
                "refusal": self.refusal, "refusal_layer": self.refusal_layer,
                "prediction_set": [] if refused else (None if self.prediction_set is None
                                                      else list(self.prediction_set)),
                "calibrated": self.calibrated_model, "warnings": list(self.warnings),
                **({} if self.calibrated_model else {"note": "not calibrated"})}

    def audit_record(self) -> dict[str, Any]:
        """What the audit trail keeps: `to_dict` without the file name (names may identify a patient)."""
        record = self.to_dict()
        record.pop("file")
        return record
