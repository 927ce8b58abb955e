"""How much of the grouped validation split did a model train on? (Why its grouped-validation score can be memory.)

    python benchmarks/validation_overlap.py [--model DIR] [--data DIR] [--out JSON]

Rebuilds the model's own training split from its card (protocol, validation fraction, seed) and the grouped
validation split (`--protocol grouped`, seed 42, 10%), groups every scan with its copies by the leakage check, and
counts the grouped-validation scans whose source group has no member in the model's training split: the only
scans on which that model and a model trained on the grouped split can be compared without memory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.data.discovery import discover, make_splits  # noqa: E402
from core.data.leakage import check_leakage  # noqa: E402
from core.model.card import load_card  # noqa: E402
from core.model.factory import default_model_dir  # noqa: E402
from core.training.launcher import default_data_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    config = load_card(args.model).training["config"]
    index = discover(args.data)
    groups = check_leakage(index).groups
    own = make_splits(index, config["protocol"], config["val_fraction"], config["seed"],
                      groups if config["protocol"] == "grouped" else None)
    grouped = make_splits(index, "grouped", 0.1, 42, groups)
    trained = {groups[s.relpath] for s in own["train"]}
    clean = [s for s in grouped["validation"] if groups[s.relpath] not in trained]
    doc = {"model": args.model, "model_split": {k: config[k] for k in ("protocol", "val_fraction", "seed")},
           "grouped_validation": len(grouped["validation"]),
           "trained_on": len(grouped["validation"]) - len(clean),
           "not_trained_on": len(clean),
           "not_trained_on_per_class": dict(Counter(index.class_names[s.label] for s in clean)),
           "command": "python benchmarks/validation_overlap.py " + " ".join(sys.argv[1:])}
    print(json.dumps(doc, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
