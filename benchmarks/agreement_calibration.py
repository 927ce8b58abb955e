"""Does agreement between the three maps predict that they point at the tumour? Calibrated on TRAINING masks only.

    nice -n 19 python benchmarks/agreement_calibration.py [--n 90] [--seed 0] [--budget-minutes 30]
        [--model DIR] [--data DIR] [--masks DIR] [--out benchmarks/results/agreement_calibration.json]

Scans: a seeded sample of tumour scans of the model's validation split (Training scans it did not train on) that
have an expert mask, stratified by class (glioma, meningioma, pituitary; classes interleaved so that a run stopped
by its budget stays balanced), rows with an annotator flag left out, and one scan per source slice
(`source_image`: identical and mirrored copies count once). Testing masks are never read.

Per scan, as the Explain page does it: the model's predicted class is explained by Score-CAM, SHAP and LIME with
the app's default options (`folder_options`: SHAP's cached background); `core.xai.agreement.agreement` gives the
agreement score (mean pairwise IoU of the top-10% regions). Each map is scored against the mask with the existing
localisation metrics (`core.xai.metrics.localise_map`), beside the centred-Gaussian floor on the same scan.

Outcome ("the maps are on the tumour"), fixed before the run: at least two of the three maps peak on the tumour
(pointing-game hit: the map's maximum inside the mask dilated by 3 px at 224 px). Secondary outcome: at least two
of the three maps put more of their energy inside the mask than the centred Gaussian does on that scan.

Rule, fixed before the run: candidate thresholds are the upper and the lower tertile edge of the agreement score
(highest first). A threshold t is accepted when the scans that the wording would call "agree" (score >= t and no
pair below DISAGREE_BELOW) are on the tumour more often than all other scans, one-sided Fisher exact test
p < 0.025 (0.05 shared by the two candidates), and in at least half of the cases. The first accepted threshold is
the rule; when none is, the wording never says "agree". The record is rewritten after every scan (and a rerun with
the same settings continues it), so an interrupted run loses nothing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from core.stats import wilson as wilson_interval  # noqa: E402
from core.training.launcher import default_data_dir  # noqa: E402

SCHEMA_VERSION = 1
METHODS = ("scorecam", "shap", "lime")
CLASSES = ("glioma", "meningioma", "pituitary")
ALPHA = 0.05
MIN_AGREE_RATE = 0.5
DEFAULT_OUT = "benchmarks/results/agreement_calibration.json"
OUTCOMES = {
    "majority_hit": "at least 2 of the 3 maps peak on the tumour (pointing-game hit, mask dilated 3 px at 224 px)",
    "majority_energy": "at least 2 of the 3 maps have more energy inside the mask than the centred Gaussian",
    "all_hit": "all 3 maps peak on the tumour",
}
PRIMARY = "majority_hit"
SUBSETS = {"all": "every scan", "correct": "scans whose predicted class is the true class",
           "unseen": "scans whose source slice is in no scan the model trained on"}


@dataclass
class ScanRecord:
    """One scan: its agreement and, per map, where it points relative to the expert mask."""

    file: str
    class_name: str
    source_image: str
    unseen: bool            # no scan of the model's training split shares the source slice
    mask_area: float
    predicted: str
    probability: float
    score: float            # mean pairwise top-10% IoU (core.xai.agreement)
    pair_iou: dict[str, float]
    disagreeing: bool       # some pair below DISAGREE_BELOW (the page's warning)
    maps: dict[str, dict[str, float]]     # method -> energy_pointing, pointing_hit, rank_accuracy
    gaussian: dict[str, float]            # the centred-Gaussian floor on the same scan
    seconds: float

    @property
    def correct(self) -> bool:
        return self.predicted == self.class_name

    def hits(self) -> list[bool]:
        """Per map: its maximum on the (dilated) mask; a map without positive values is not."""
        return [bool(self.maps[m]["pointing_hit"] == 1.0) for m in METHODS]

    def above_floor(self) -> list[bool]:
        """Per map: more of its energy inside the mask than the centred Gaussian's."""
        floor = self.gaussian["energy_pointing"]
        return [bool(np.isfinite(self.maps[m]["energy_pointing"]) and self.maps[m]["energy_pointing"] > floor)
                for m in METHODS]

    def outcome(self, name: str = PRIMARY) -> bool:
        if name == "majority_hit":
            return sum(self.hits()) >= 2
        if name == "majority_energy":
            return sum(self.above_floor()) >= 2
        if name == "all_hit":
            return all(self.hits())
        raise ValueError(f"unknown outcome {name!r}")


@dataclass
class Rate:
    """Share of scans on the tumour with its Wilson 95% interval."""

    n: int
    on_lesion: int
    rate: float | None
    ci95: tuple[float | None, float | None]


@dataclass
class BinRow:
    """One agreement bin: score range, scans per class, and the rate of each outcome."""

    label: str
    low: float
    high: float
    n: int
    per_class_n: dict[str, int]
    rates: dict[str, Rate]


@dataclass
class Candidate:
    """One candidate threshold of the rule and its test."""

    threshold: float
    agree: Rate
    rest: Rate
    p_value: float | None
    accepted: bool


@dataclass
class Rule:
    """The chosen wording rule: say "agree" from `agree_from` on (None: never), with the measured rates."""

    agree_from: float | None
    agree: Rate | None
    disagree: Rate              # scans with a pair below DISAGREE_BELOW
    neutral: Rate               # the others (not "agree", not "disagree")
    candidates: list[Candidate]
    text: str


@dataclass
class AgreementCalibration:
    """The record of `benchmarks/agreement_calibration.py` (benchmarks/results/agreement_calibration.json)."""

    schema_version: int
    model: str
    command: str
    split: str
    seed: int
    n_requested: int
    n_done: int
    budget_minutes: float | None
    wall_seconds: float
    methods: list[str]
    method_options: dict[str, dict[str, Any]]
    explained_class: str
    sample: str
    outcomes: dict[str, str]
    primary_outcome: str
    disagree_below: float
    tertile_edges: list[float]
    bins: dict[str, list[BinRow]]          # subset -> tertile bins
    fixed_bins: dict[str, list[BinRow]]    # subset -> bins at the page's fixed levels
    rule: Rule | None
    records: list[ScanRecord] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=_plain) + "\n"

    @classmethod
    def from_json(cls, text: str) -> AgreementCalibration:
        doc = json.loads(text)
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"agreement calibration schema {doc.get('schema_version')!r}, expected {SCHEMA_VERSION}")
        doc["bins"] = {k: [_bin(b) for b in v] for k, v in doc["bins"].items()}
        doc["fixed_bins"] = {k: [_bin(b) for b in v] for k, v in doc["fixed_bins"].items()}
        doc["rule"] = _rule(doc["rule"]) if doc.get("rule") else None
        doc["records"] = [ScanRecord(**r) for r in doc.get("records", [])]
        return cls(**doc)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _rate(d: dict[str, Any] | None) -> Rate | None:
    return None if d is None else Rate(d["n"], d["on_lesion"], d["rate"], tuple(d["ci95"]))


def _bin(d: dict[str, Any]) -> BinRow:
    return BinRow(d["label"], d["low"], d["high"], d["n"], d["per_class_n"],
                  {k: _rate(v) for k, v in d["rates"].items()})


def _rule(d: dict[str, Any]) -> Rule:
    return Rule(d["agree_from"], _rate(d["agree"]), _rate(d["disagree"]), _rate(d["neutral"]),
                [Candidate(c["threshold"], _rate(c["agree"]), _rate(c["rest"]), c["p_value"], c["accepted"])
                 for c in d["candidates"]], d["text"])


# ---------------------------------------------------------------- analysis (pure: records in, tables out)

def wilson(hits: int, n: int) -> Rate:
    """Rate with its Wilson 95% interval (no scans: rate None)."""
    interval = wilson_interval(hits, n)
    if interval is None:
        return Rate(0, 0, None, (None, None))
    return Rate(n, hits, hits / n, (interval.low, interval.high))


def rate_of(records: list[ScanRecord], outcome: str = PRIMARY) -> Rate:
    return wilson(sum(r.outcome(outcome) for r in records), len(records))


def tertile_edges(records: list[ScanRecord]) -> list[float]:
    scores = np.asarray([r.score for r in records if np.isfinite(r.score)])
    if scores.size < 3:
        return []
    return [float(round(q, 3)) for q in np.quantile(scores, [1 / 3, 2 / 3])]


def make_bins(records: list[ScanRecord], edges: list[float], labels: list[str]) -> list[BinRow]:
    """Bins [-inf, e1), [e1, e2), ..., [ek, inf) of the agreement score, with each outcome's rate."""
    bounds = [-math.inf, *edges, math.inf]
    rows = []
    for label, low, high in zip(labels, bounds[:-1], bounds[1:]):
        inside = [r for r in records if low <= r.score < high]
        rows.append(BinRow(label, low if math.isfinite(low) else 0.0, high if math.isfinite(high) else 1.0,
                           len(inside), {c: sum(r.class_name == c for r in inside) for c in CLASSES},
                           {k: rate_of(inside, k) for k in OUTCOMES}))
    return rows


def fisher_greater(a: Rate, b: Rate) -> float | None:
    """One-sided Fisher exact p that group a is on the tumour more often than group b."""
    from scipy.stats import fisher_exact

    if a.n == 0 or b.n == 0:
        return None
    table = [[a.on_lesion, a.n - a.on_lesion], [b.on_lesion, b.n - b.on_lesion]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def choose_rule(records: list[ScanRecord], edges: list[float], alpha: float = ALPHA,
                min_rate: float = MIN_AGREE_RATE) -> Rule:
    """The pre-registered rule (module docstring): the highest tertile edge at which 'agree' scans are on the
    tumour significantly more often than the rest (Bonferroni over the candidates) and in at least `min_rate`."""
    candidates = []
    level = alpha / max(1, len(edges))
    for t in sorted(edges, reverse=True):
        agree = [r for r in records if r.score >= t and not r.disagreeing]
        rest = [r for r in records if not (r.score >= t and not r.disagreeing)]
        a, b = rate_of(agree), rate_of(rest)
        p = fisher_greater(a, b)
        ok = p is not None and p < level and a.rate is not None and a.rate >= min_rate
        candidates.append(Candidate(t, a, b, p, ok))
    chosen = next((c for c in candidates if c.accepted), None)
    disagree = rate_of([r for r in records if r.disagreeing])
    if chosen is None:
        neutral = rate_of([r for r in records if not r.disagreeing])
        text = ("No agreement level at which the maps were on the tumour more often than at lower levels "
                f"(one-sided Fisher p < {level:.3g} and at least {min_rate:.0%}): the wording never says 'agree'.")
        return Rule(None, None, disagree, neutral, candidates, text)
    neutral = rate_of([r for r in records if not r.disagreeing and r.score < chosen.threshold])
    text = (f"'agree' from {chosen.threshold:.3f} on (no pair below the disagreement level): on the tumour in "
            f"{chosen.agree.rate:.0%} of {chosen.agree.n} scans vs {chosen.rest.rate:.0%} of {chosen.rest.n} others "
            f"(p = {chosen.p_value:.3g}).")
    return Rule(chosen.threshold, chosen.agree, disagree, neutral, candidates, text)


def analyse(records: list[ScanRecord], disagree_below: float) -> tuple[list[float], dict, dict, Rule | None]:
    edges = tertile_edges(records)
    subsets = {"all": records, "correct": [r for r in records if r.correct],
               "unseen": [r for r in records if r.unseen]}
    bins = {k: make_bins(v, edges, ["low tertile", "middle tertile", "high tertile"]) for k, v in subsets.items()} \
        if edges else {}
    fixed = [disagree_below, 2 * disagree_below]
    fixed_labels = [f"< {fixed[0]:.2f}", f"{fixed[0]:.2f}-{fixed[1]:.2f}", f">= {fixed[1]:.2f}"]
    fixed_bins = {k: make_bins(v, fixed, fixed_labels) for k, v in subsets.items()}
    rule = choose_rule(records, edges) if edges else None
    return edges, bins, fixed_bins, rule


def _cell(rate: Rate) -> str:
    if rate.rate is None:
        return "–"
    return f"{rate.rate:.2f} [{rate.ci95[0]:.2f}, {rate.ci95[1]:.2f}]"


def table(doc: AgreementCalibration) -> str:
    """Markdown tables of the record (the docs quote them)."""
    lines = []
    for title, block in (("Tertiles of the agreement score", doc.bins), ("Fixed levels", doc.fixed_bins)):
        lines += [f"**{title}**", "",
                  "| subset | bin | score range | n (gl/me/pi) | ≥2 of 3 maps peak on tumour | "
                  "≥2 of 3 above Gaussian energy | all 3 peak on tumour |", "|---|---|---|---|---|---|---|"]
        for subset, rows in block.items():
            for b in rows:
                per = "/".join(str(b.per_class_n[c]) for c in CLASSES)
                lines.append(f"| {subset} | {b.label} | {b.low:.3f}–{b.high:.3f} | {b.n} ({per}) | "
                             f"{_cell(b.rates['majority_hit'])} | {_cell(b.rates['majority_energy'])} | "
                             f"{_cell(b.rates['all_hit'])} |")
        lines.append("")
    if doc.rule is not None:
        lines.append("**Rule candidates** (agree = score ≥ t and no pair below the disagreement level)")
        lines += ["", "| t | agree: n, rate [95% CI] | others: n, rate [95% CI] | one-sided Fisher p | accepted |",
                  "|---:|---|---|---:|---|"]
        for c in doc.rule.candidates:
            p = "–" if c.p_value is None else f"{c.p_value:.3g}"
            lines.append(f"| {c.threshold:.3f} | {c.agree.n}, {_cell(c.agree)} | {c.rest.n}, {_cell(c.rest)} | {p} | "
                         f"{'yes' if c.accepted else 'no'} |")
        lines += ["", f"Disagreeing scans (a pair below {doc.disagree_below:.2f}): {doc.rule.disagree.n}, "
                      f"{_cell(doc.rule.disagree)}; neutral: {doc.rule.neutral.n}, {_cell(doc.rule.neutral)}.",
                  "", f"Rule: {doc.rule.text}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- the run (needs the model and the data)

def select(masks: Any, allowed: set[str], n: int, seed: int) -> list[Any]:
    """n unflagged validation-split mask rows, n/3 per class, one per source slice, classes interleaved."""
    rng = np.random.default_rng(seed)
    per_class = []
    for i, name in enumerate(CLASSES):
        quota = n // len(CLASSES) + (1 if i < n % len(CLASSES) else 0)
        pool = [r for r in masks.select("Training", flagged=False) if r.class_name == name and r.file in allowed]
        chosen, sources = [], set()
        for j in rng.permutation(len(pool)):
            row = pool[j]
            if row.source_image in sources:
                continue
            sources.add(row.source_image)
            chosen.append(row)
            if len(chosen) == quota:
                break
        per_class.append(chosen)
    longest = max(len(rows) for rows in per_class)
    return [rows[k] for k in range(longest) for rows in per_class if k < len(rows)]


def score_scan(model: Any, card: Any, image: np.ndarray, mask: np.ndarray, options: dict[str, dict[str, Any]]
               ) -> dict[str, Any]:
    from core.model.inference import predict_proba
    from core.xai.agreement import agreement
    from core.xai.explainers import explain
    from core.xai.metrics import gaussian_map, localise_map

    probs = predict_proba(model, image)[0]
    predicted = int(probs.argmax())
    start = time.perf_counter()
    maps = {m: explain(model, image, m, predicted, card, **options[m]).map for m in METHODS}
    seconds = time.perf_counter() - start
    agreed = agreement(maps, image)
    return {"predicted": card.class_names[predicted], "probability": float(probs[predicted]),
            "score": float(agreed.score),
            "pair_iou": {f"{a}-{b}": float(v["top_iou"]) for (a, b), v in agreed.pairs.items()},
            "disagreeing": bool(agreed.disagreeing),
            "maps": {m: localise_map(maps[m], mask) for m in METHODS},
            "gaussian": localise_map(gaussian_map(card.image_size), mask), "seconds": round(seconds, 2)}


def main() -> int:
    from core.data.masks import default_masks_dir, load_mask_index
    from core.model.factory import default_model_dir, load_model
    from core.xai.agreement import DISAGREE_BELOW
    from core.xai.explainers import EXPLAINERS, folder_options, warm_up
    from core.xai.localisation import load_scans, validation_files

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--masks", default=None)
    parser.add_argument("--n", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="start no new scan after this many minutes")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--analyse-only", action="store_true", help="recompute the tables from the record's scans")
    args = parser.parse_args()
    out = Path(args.out)
    command = "python benchmarks/agreement_calibration.py " + " ".join(sys.argv[1:])

    previous = AgreementCalibration.from_json(out.read_text()) if out.is_file() else None
    if args.analyse_only:
        if previous is None:
            raise SystemExit(f"{out} does not exist")
        edges, bins, fixed_bins, rule = analyse(previous.records, previous.disagree_below)
        previous.tertile_edges, previous.bins, previous.fixed_bins, previous.rule = edges, bins, fixed_bins, rule
        out.write_text(previous.to_json())
        print(table(previous))
        return 0

    model, card = load_model(args.model)
    masks = load_mask_index(args.masks or default_masks_dir(args.data))
    allowed = validation_files(card, args.data)
    if allowed is None:
        raise SystemExit("the model card does not say how it split Training; cannot find its validation scans")
    training_sources = {r.source_image for r in masks.select("Training") if r.file not in allowed}
    rows = select(masks, allowed, args.n, args.seed)
    options = {m: folder_options(m, args.model, card.image_size) for m in METHODS}
    recorded = {m: {k: (f"array{tuple(v.shape)}" if isinstance(v, np.ndarray) else v)
                    for k, v in {**EXPLAINERS[m].default_options, **options[m]}.items()} for m in METHODS}
    settings = (card.name, args.seed, args.n)
    done: dict[str, ScanRecord] = {}
    if previous is not None and (previous.model, previous.seed, previous.n_requested) == settings:
        done = {r.file: r for r in previous.records}
        print(f"continuing {out}: {len(done)} scans reused", file=sys.stderr)

    warm_up(model)
    start = time.perf_counter()
    deadline = start + 60 * args.budget_minutes if args.budget_minutes else None
    records: list[ScanRecord] = []
    for i, row in enumerate(rows):
        if row.file in done:
            records.append(done[row.file])
            continue
        if deadline is not None and time.perf_counter() > deadline:
            print(f"budget of {args.budget_minutes:g} min reached after {len(records)} scans", file=sys.stderr)
            break
        scan = load_scans(masks, [row], args.data, card.class_names, card.image_size, card.crop)[0]
        values = score_scan(model, card, scan.image, scan.mask, options)
        records.append(ScanRecord(file=row.file, class_name=row.class_name, source_image=row.source_image,
                                  unseen=row.source_image not in training_sources, mask_area=float(scan.mask.mean()),
                                  **values))
        r = records[-1]
        print(f"{i + 1}/{len(rows)} {time.perf_counter() - start:.0f} s  {r.class_name[:4]} -> {r.predicted[:4]}  "
              f"agreement {r.score:.3f}  hits {''.join('x' if h else '.' for h in r.hits())}  ({r.seconds:.1f} s)",
              file=sys.stderr, flush=True)
        edges, bins, fixed_bins, rule = analyse(records, DISAGREE_BELOW)
        doc = AgreementCalibration(
            SCHEMA_VERSION, card.name, command, "Training (the model's validation split; Testing masks unused)",
            args.seed, args.n, len(records), args.budget_minutes,
            round(time.perf_counter() - start + (previous.wall_seconds if done and previous else 0.0), 1),
            list(METHODS), recorded, "the model's predicted class (as the Explain page does by default)",
            "validation-split tumour scans with an unflagged expert mask, n/3 per class, one per source slice",
            OUTCOMES, PRIMARY, DISAGREE_BELOW, edges, bins, fixed_bins, rule, records)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(doc.to_json())
        tmp.replace(out)
    final = AgreementCalibration.from_json(out.read_text())
    print(table(final))
    print(f"{final.n_done} scans, {final.wall_seconds} s wall; record {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
