"""The DICOM Structured Report of a classified series: its content tree, its read-back and its text rendering.

A Comprehensive SR (no template is claimed: the tree below is this app's own, built from standard content items and
standard codes where DICOM has one, private codes of scheme `99BSXAI` where it has none). Root children:
language, the observer device (TID 1004) and the algorithm (TID 4019: model name, version = the first 12 hex digits
of the model file's SHA-256, parameters), the "research use only" statement, the series assessment (summary, rule,
series tumour probability and the slice it comes from) and one "Measurement Group" container per slice: tracking
identifier, the source image (SOP Class / Instance UID), state, headline, input gate, and either the refusal and
its reason (no probabilities, no set) or the probabilities (calibrated when the model folder is), the answer (only
when it may be shown: not in the uncertain states), the top class and the prediction set.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from hashlib import sha1
from typing import TYPE_CHECKING, Any

import highdicom as hd
from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ContainerContentItem,
    ImageContentItem,
    NumContentItem,
    RelationshipTypeValues,
    TextContentItem,
)
from highdicom.sr.templates import DEFAULT_LANGUAGE
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from core.errors import CaseError
from core.model.assessment import Assessment
from core.model.card import class_label
from core.report.model_info import ModelInfo

if TYPE_CHECKING:  # the series module pulls in the inference stack; only its type is needed here
    from core.model.series_assessment import SeriesResult

SCHEME = "99BSXAI"
SCHEME_NAME = "BrainScan XAI private codes"
RESEARCH_ONLY = "Research use only - not a medical device"
CONTAINS, MODIFIER = RelationshipTypeValues.CONTAINS, RelationshipTypeValues.HAS_CONCEPT_MOD
CONTEXT = RelationshipTypeValues.HAS_OBS_CONTEXT


def _private(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, SCHEME, meaning)


def _privates(*codes: tuple[str, str]) -> tuple[CodedConcept, ...]:
    """Private codes from (value, meaning) pairs, in order."""
    return tuple(_private(value, meaning) for value, meaning in codes)


TITLE = CodedConcept("18748-4", "LN", "Diagnostic imaging report")
COMMENT = CodedConcept("121106", "DCM", "Comment")
GROUP = CodedConcept("125007", "DCM", "Measurement Group")
TRACKING = CodedConcept("112039", "DCM", "Tracking Identifier")
SOURCE = CodedConcept("121112", "DCM", "Source of Measurement")
FINDING = CodedConcept("121071", "DCM", "Finding")
SUMMARY = CodedConcept("121111", "DCM", "Summary")
PROBABILITY = CodedConcept("122157", "DCM", "Probability")
MODEL_SHA, SERIES, RULE, SERIES_P, TOP_SLICE = _privates(
    ("MODELSHA256", "Model file SHA-256"), ("SERIES", "Series assessment"), ("RULE", "Series rule"),
    ("SERIESP", "Series tumour probability"), ("TOPSLICE", "Slice of the series tumour probability"))
STATE, HEADLINE, GATE, REFUSAL, REFUSAL_LAYER = _privates(
    ("STATE", "Assessment state"), ("HEADLINE", "Headline"), ("GATE", "Input gate"), ("REFUSAL", "Refusal reason"),
    ("REFUSALLAYER", "Refusal layer"))
TOP_CLASS, SET_TEXT, SET_MEMBER, SLICE_P, CLASS, WARNING = _privates(
    ("TOPCLASS", "Most probable class"), ("SETTEXT", "Prediction set"), ("SETMEMBER", "Prediction set member"),
    ("SLICEP", "Tumour probability"), ("CLASS", "Class"), ("WARNING", "Caveat"))
NO_UNITS = CodedConcept("1", "UCUM", "no units")


def class_code(name: str) -> CodedConcept:
    """A class as a private code: its card name as the value (hashed when over 16 characters), its label as meaning."""
    value = name if len(name) <= 16 else "C" + sha1(name.encode()).hexdigest()[:15]
    return _private(value, class_label(name))


def _text(name: CodedConcept, value: str, relationship: RelationshipTypeValues = CONTAINS) -> TextContentItem:
    return TextContentItem(name=name, value=value[:10000] or "-", relationship_type=relationship)


def _num(name: CodedConcept, value: float) -> NumContentItem:
    return NumContentItem(name=name, value=round(float(value), 6), unit=NO_UNITS, relationship_type=CONTAINS)


def _probability(name: str, value: float) -> NumContentItem:
    """One class's probability (calibrated when the model folder is), the class as its concept modifier."""
    item = _num(PROBABILITY, value)
    item.ContentSequence = [CodeContentItem(name=CLASS, value=class_code(name), relationship_type=MODIFIER)]
    return item


def _image(name: CodedConcept, source: Dataset) -> ImageContentItem:
    return ImageContentItem(name=name, referenced_sop_class_uid=source.SOPClassUID,
                            referenced_sop_instance_uid=source.SOPInstanceUID, relationship_type=CONTAINS)


def _container(name: CodedConcept, items: list[Any]) -> ContainerContentItem:
    container = ContainerContentItem(name=name, relationship_type=CONTAINS)
    container.ContentSequence = items
    return container


def _answered(assessment: Assessment) -> list[Any]:
    """A slice's answer: top class, the answer when it may be shown, probabilities, the prediction set, caveats."""
    items: list[Any] = [CodeContentItem(name=TOP_CLASS, value=class_code(assessment.predicted or ""),
                                        relationship_type=CONTAINS)]
    if assessment.answer is not None:
        items.append(CodeContentItem(name=FINDING, value=class_code(assessment.answer), relationship_type=CONTAINS))
    items += [_probability(c, p) for c, p in assessment.probabilities.items()]
    if assessment.prediction_set is not None:
        items.append(_text(SET_TEXT, assessment.set_text()))
        items += [CodeContentItem(name=SET_MEMBER, value=class_code(c), relationship_type=CONTAINS)
                  for c in assessment.prediction_set]
    return items + [_text(WARNING, w) for w in assessment.warnings]


def _slice_group(index: int, total: int, source: Dataset, assessment: Assessment,
                 suspicion: float) -> ContainerContentItem:
    """One slice's measurement group (see the module docstring)."""
    items: list[Any] = [_text(TRACKING, f"slice {index + 1} of {total}", CONTEXT), _image(SOURCE, source),
                        CodeContentItem(name=STATE, value=_private(assessment.state.value, assessment.state_text),
                                        relationship_type=CONTAINS),
                        _text(HEADLINE, assessment.headline), _text(GATE, assessment.gate_text())]
    if assessment.refused:
        items += [_text(REFUSAL, assessment.refusal or ""), _text(REFUSAL_LAYER, assessment.refusal_layer or "")]
    else:
        items += [*_answered(assessment), _num(SLICE_P, suspicion)]
    return _container(GROUP, items)


def _series_group(result: SeriesResult, sources: list[Dataset]) -> ContainerContentItem:
    items: list[Any] = [_text(SUMMARY, result.summary()), _text(RULE, result.rule)]
    if len(result.refused) < len(sources):
        items += [_num(SERIES_P, result.suspicion[result.top]), _image(TOP_SLICE, sources[result.top])]
    return _container(SERIES, items)


def sr_content(result: SeriesResult, sources: list[Dataset], info: ModelInfo) -> ContainerContentItem:
    """The SR's root container for a classified series (`sources` in the order of `result.predictions`); the app's
    version is the SR's Software Versions attribute."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=hd.UID.from_uuid(_uuid(info.sha256)), name="BrainScan XAI", manufacturer_name="BrainScan XAI",
        model_name=f"{info.name} {info.version}"[:64])
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    algorithm = hd.sr.AlgorithmIdentification(
        name=info.name, version=info.version,
        parameters=[f"backbone {info.backbone}", f"image size {info.image_size}",
                    "classes " + ", ".join(info.class_names)])
    root = ContainerContentItem(name=TITLE)
    root.ContentSequence = [
        *hd.sr.LanguageOfContentItemAndDescendants(DEFAULT_LANGUAGE),
        *context, *algorithm, _text(MODEL_SHA, info.sha256, MODIFIER), _text(COMMENT, RESEARCH_ONLY),
        _series_group(result, sources),
        *(_slice_group(i, len(sources), s, a, result.suspicion[i])
          for i, (s, a) in enumerate(zip(sources, result.predictions)))]
    return root


def _uuid(sha256: str) -> str:
    """A stable UUID from the model's hash, so one model is one observer device across reports."""
    return str(uuid.UUID(sha256[:32]))


@dataclass(frozen=True)
class SrSlice:
    """One slice as the SR holds it (class codes are the card's class names)."""

    tracking: str
    sop_class_uid: str
    sop_instance_uid: str
    state: str
    headline: str
    answer: str | None
    top_class: str | None
    probabilities: dict[str, float]
    prediction_set: tuple[str, ...] | None
    refusal: str | None


@dataclass(frozen=True)
class SrReading:
    """What an SR written by `sr_content` says: model, statement, series summary and every slice."""

    model_name: str
    model_version: str
    statement: str
    summary: str
    series_probability: float | None
    slices: tuple[SrSlice, ...]


def _items(node: Any) -> list[Dataset]:
    return list(getattr(node, "ContentSequence", []))


def _name(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return code.CodingSchemeDesignator, code.CodeValue


def _by_name(node: Any) -> dict[tuple[str, str], list[Dataset]]:
    out: dict[tuple[str, str], list[Dataset]] = {}
    for item in _items(node):
        out.setdefault(_name(item), []).append(item)
    return out


def _key(code: CodedConcept) -> tuple[str, str]:
    return code.scheme_designator, code.value


def _read_slice(group: Dataset) -> SrSlice:
    found = _by_name(group)

    def text(code: CodedConcept) -> str | None:
        return found[_key(code)][0].TextValue if _key(code) in found else None

    def coded(code: CodedConcept) -> list[str]:
        return [i.ConceptCodeSequence[0].CodeValue for i in found.get(_key(code), [])]

    probabilities = {i.ContentSequence[0].ConceptCodeSequence[0].CodeValue:
                     float(i.MeasuredValueSequence[0].NumericValue) for i in found.get(_key(PROBABILITY), [])}
    image = found[_key(SOURCE)][0].ReferencedSOPSequence[0]
    return SrSlice(text(TRACKING) or "", image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID,
                   coded(STATE)[0], text(HEADLINE) or "", next(iter(coded(FINDING)), None),
                   next(iter(coded(TOP_CLASS)), None), probabilities,
                   tuple(coded(SET_MEMBER)) if _key(SET_TEXT) in found else None, text(REFUSAL))


def read_sr(ds: Dataset) -> SrReading:
    """Read back an SR that `sr_content` built (for the round-trip tests and the app's "what was sent"); a CaseError
    for any other SR (one from another application in the same study, say)."""
    found = _by_name(ds) if "ConceptNameCodeSequence" in ds else {}
    if _key(SERIES) not in found or _key(COMMENT) not in found:
        raise CaseError("this structured report was not written by BrainScan XAI (no series assessment in it)")
    series = _by_name(found[_key(SERIES)][0])
    algorithm = {code: items[0].TextValue for (_, code), items in found.items() if code in ("111001", "111003")}
    probability = series.get(_key(SERIES_P))
    return SrReading(algorithm.get("111001", ""), algorithm.get("111003", ""), found[_key(COMMENT)][0].TextValue,
                     series[_key(SUMMARY)][0].TextValue,
                     None if probability is None else float(probability[0].MeasuredValueSequence[0].NumericValue),
                     tuple(_read_slice(g) for g in found.get(_key(GROUP), [])))


def _value(item: Dataset) -> str:
    kind = item.ValueType
    if kind == "TEXT":
        return f'"{item.TextValue}"'
    if kind == "CODE":
        code = item.ConceptCodeSequence[0]
        return f'({code.CodeValue},{code.CodingSchemeDesignator},"{code.CodeMeaning}")'
    if kind == "NUM":
        measured = item.MeasuredValueSequence[0]
        unit = measured.MeasurementUnitsCodeSequence[0]
        return f'"{measured.NumericValue}" ({unit.CodeValue},{unit.CodingSchemeDesignator},"{unit.CodeMeaning}")'
    if kind == "IMAGE":
        ref = item.ReferencedSOPSequence[0]
        return f"({ref.ReferencedSOPClassUID},{ref.ReferencedSOPInstanceUID})"
    if kind == "UIDREF":
        return f'"{item.UID}"'
    return ""


def sr_text(ds: Dataset) -> str:
    """The SR's content tree as indented text, one content item a line in `dsrdump`'s layout (relationship, value
    type, concept name, value; values in full), for the docs and the app's "what was sent"."""
    def lines(node: Any, depth: int) -> list[str]:
        out = []
        for item in _items(node):
            code = item.ConceptNameCodeSequence[0]
            value = _value(item)
            out.append(f'{"  " * depth}<{item.RelationshipType.lower()} {item.ValueType}:({code.CodeValue},'
                       f'{code.CodingSchemeDesignator},"{code.CodeMeaning}"){"=" + value if value else ""}>')
            out += lines(item, depth + 1)
        return out

    title = ds.ConceptNameCodeSequence[0]
    return "\n".join([f'<CONTAINER:({title.CodeValue},{title.CodingSchemeDesignator},"{title.CodeMeaning}")>',
                      *lines(ds, 1)])
