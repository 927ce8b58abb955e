"""Known limits of a model in plain words, computed from the external results saved in its card.

`python -m core evaluate-external DIR --save` stores, per external set, the tumour recall and the no-tumour
specificity with Wilson 95% intervals (`card.evaluation["external"]`); `python -m core evaluate --external DIR
--save` stores the input gate's refusals per set (`card.evaluation["trust"]["external"]`). This module turns those
numbers into one-line sentences for people who read the app or a report ("This model misses about 2 in 3
tumours ..."). Every number and every "about k in n" comes from the card; nothing is typed in.

A card without external results gives no sentence (never an error): `known_limits` returns [] and
`headline_limit` None. Figures on fewer than `MIN_N` scans, and error rates below `MIN_ERROR`, give no sentence.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MIN_N = 20  # fewer scans than this: the interval is too wide for a plain-language sentence
MIN_ERROR = 0.05  # an error rate below this is not called a limit
PLANE_GAP = 0.05  # a plane is named when its error rate exceeds the set's by this much
DENOMINATORS = (2, 3, 4, 5, 10, 6, 8, 7, 9)  # everyday fractions first: "7 in 10" before "5 in 7"

# What each known external set is, in words a clinician reads; other set names are quoted as they are.
SET_WORDS = {
    "tumour_navoneel": "tumour scans from another public collection (navoneel, mixed MRI sequences)",
    "near_ood_brats": "T2-FLAIR glioma slices (BraTS 2023), a sequence the training scans rarely show",
    "notumor_brisc": "brain scans from another collection (BRISC 2025)",
    "brain_other_planes_or_sequences": "full-head T1 scans from a stroke study (many slices through the face or "
                                       "skull base)",
    "far_ood": "images that are not brain MRI (photos, X-rays, other body parts)",
}
# The navoneel set once training used the Br35H collection's other tumour images (README of external-eval).
SEEN_COLLECTION_WORDS = {
    "tumour_navoneel": "tumour scans of new patients from a collection seen in training (navoneel/Br35H)",
}
FAR_OOD = "far_ood"
KIND_ORDER = ("missed_tumour", "false_tumour", "not_refused")  # a missed tumour matters most


@dataclass(frozen=True)
class Limit:
    """One measured limit: the share of scans the model gets wrong on one external set."""

    kind: str  # "missed_tumour", "false_tumour" or "not_refused"
    set_name: str
    error: float  # the share the sentence is about (tumours missed, normals called tumour, non-MRI let through)
    text: str


def fraction_words(rate: float) -> str:
    """A share in everyday words: 'about 2 in 3', 'about 1 in 7', 'about 19 in 20', 'none', 'all'.

    Between 10% and 90%: the first fraction in `DENOMINATORS` order (halves, thirds, quarters, fifths, tenths,
    then the rest up to ninths) that lies within a tenth of the smaller of the share and its complement, else the
    closest one; below 10% 'about 1 in N', above 90% 'about N-1 in N'."""
    if rate != rate:  # NaN
        raise ValueError("rate is not a number")
    if rate <= 0:
        return "none"
    if rate >= 1:
        return "all"
    if rate < 0.1:
        return f"about 1 in {round(1 / rate)}"
    if rate > 0.9:
        n = round(1 / (1 - rate))
        return f"about {n - 1} in {n}"
    tolerance = 0.1 * min(rate, 1 - rate)
    candidates = [Fraction(round(rate * q), q) for q in DENOMINATORS]
    candidates = [f for f in candidates if 0 < f < 1]
    close = [f for f in candidates if abs(float(f) - rate) <= tolerance]
    best = close[0] if close else min(candidates, key=lambda f: (abs(float(f) - rate), f.denominator))
    return f"about {best.numerator} in {best.denominator}"


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _figure(value: float, entry: Mapping[str, Any] | None) -> str:
    """'30%, 95% CI 19–43%' (the interval only when the card has one)."""
    ci = entry.get("ci95") if isinstance(entry, Mapping) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f"{_percent(value)}, 95% CI {ci[0]:.0%}–{ci[1]:.0%}".replace("%–", "–", 1)
    return _percent(value)


def _rate(entry: Any) -> tuple[float, int, int] | None:
    """(value, k, n) of a saved proportion {value, ci95, k, n}, or None when it is missing, malformed or small."""
    if not isinstance(entry, Mapping):
        return None
    value, n = entry.get("value"), entry.get("n")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value or not 0 <= value <= 1:
        return None
    if not isinstance(n, int) or n < MIN_N:
        return None
    k = entry.get("k")
    return float(value), (k if isinstance(k, int) else round(value * n)), n


def _evaluation(card: Any) -> Mapping[str, Any]:
    evaluation = card.get("evaluation") if isinstance(card, Mapping) else getattr(card, "evaluation", None)
    return evaluation if isinstance(evaluation, Mapping) else {}


def _training_config(card: Any) -> Mapping[str, Any]:
    training = card.get("training") if isinstance(card, Mapping) else getattr(card, "training", None)
    config = training.get("config") if isinstance(training, Mapping) else None
    return config if isinstance(config, Mapping) else {}


def saw_tumour_collection(card: Any) -> bool:
    """Whether the model was trained on the Br35H tumour collection (`--tumour-collection`): the navoneel set's
    tumours are then new patients of a collection seen in training, not another collection."""
    return bool(_training_config(card).get("tumour_collection"))


def set_words(name: str, card: Any = None) -> str:
    """Plain description of an external set by its folder name (the folder name itself when unknown)."""
    if card is not None and saw_tumour_collection(card) and name in SEEN_COLLECTION_WORDS:
        return SEEN_COLLECTION_WORDS[name]
    return SET_WORDS.get(name, f"the external set '{name}'")


def _worst_plane(result: Mapping[str, Any], key: str, overall_error: float) -> tuple[str, float] | None:
    planes = result.get("per_plane")
    if not isinstance(planes, Mapping):
        return None
    worst = None
    for plane, part in planes.items():
        rate = _rate(part.get(key) if isinstance(part, Mapping) else None)
        if rate is not None and 1 - rate[0] >= overall_error + PLANE_GAP and (worst is None or 1 - rate[0] > worst[1]):
            worst = (str(plane), 1 - rate[0])
    return worst


def limits(card: Any) -> list[Limit]:
    """Every measured limit in the card: missed tumours, then normals called tumour, then non-MRI let through;
    largest error first within each (see `known_limits`)."""
    evaluation = _evaluation(card)
    external = evaluation.get("external")
    found: list[Limit] = []
    if isinstance(external, Mapping):
        for name, result in external.items():
            if not isinstance(result, Mapping):
                continue
            words = set_words(str(name), card)
            recall = _rate(result.get("tumour_recall"))
            if recall is not None and 1 - recall[0] >= MIN_ERROR:
                value, k, n = recall
                found.append(Limit("missed_tumour", str(name), 1 - value, (
                    f"This model misses {fraction_words(1 - value)} tumours on {words}: tumour recall "
                    f"{_figure(value, result['tumour_recall'])}, {k} of {n} found.")))
            specificity = _rate(result.get("notumor_specificity"))
            if specificity is not None and 1 - specificity[0] >= MIN_ERROR:
                value, k, n = specificity
                plane = _worst_plane(result, "notumor_specificity", 1 - value)
                on_plane = f", {fraction_words(plane[1])} on {plane[0]} slices" if plane else ""
                found.append(Limit("false_tumour", str(name), 1 - value, (
                    f"This model calls {fraction_words(1 - value)} normal scans a tumour on {words}{on_plane}: "
                    f"no-tumour specificity {_figure(value, result['notumor_specificity'])}, {k} of {n} called "
                    "normal.")))
    trust = evaluation.get("trust")
    gate = trust.get("external") if isinstance(trust, Mapping) else None
    far = gate.get(FAR_OOD) if isinstance(gate, Mapping) else None
    if isinstance(far, Mapping):
        refused = _rate({"value": far.get("refused"), "ci95": far.get("refused_ci95"), "n": far.get("n")})
        if refused is not None and 1 - refused[0] >= MIN_ERROR:
            value, k, n = refused
            found.append(Limit("not_refused", FAR_OOD, 1 - value, (
                f"The input check lets {fraction_words(1 - value)} {SET_WORDS[FAR_OOD]} through to the classifier: "
                f"refused {_figure(value, {'ci95': far.get('refused_ci95')})}, {k} of {n}.")))
    return sorted(found, key=lambda limit: (KIND_ORDER.index(limit.kind), -limit.error))


def known_limits(card: Any) -> list[str]:
    """Plain-language sentences on what the model gets wrong on scans from other collections: missed tumours
    first, then normal scans called a tumour, then images that are not brain MRI let through; worst first in each.

    `card` is a `ModelCard` or the card's JSON as a dict. The sentences are computed from the card's saved
    external results (`evaluation.external`: tumour recall, no-tumour specificity per set and plane, with 95%
    intervals; `evaluation.trust.external.far_ood`: the input gate's refusals), e.g. "This model misses about 7 in
    10 tumours on tumour scans from another public collection (navoneel, mixed MRI sequences): tumour recall 30%,
    95% CI 19–43%, 16 of 54 found." A card without external results, or with malformed ones, gives []; nothing is raised."""
    return [limit.text for limit in limits(card)]


def headline_limit(card: Any) -> str | None:
    """The single most important known limit (the worst tumour miss, if any), or None when the card has no
    external results."""
    found = known_limits(card)
    return found[0] if found else None
