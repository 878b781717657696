"""Served-label macro-F1 of a trained joint model under three threshold choices, tuned on the validation
split and measured on both splits: per-label F1 thresholds (export's default), thresholds tuned for
the served label (``training.evaluation.served_thresholds``), and none (0.5).

    python scripts/served_threshold_study.py runs/real/e3/train_v2/model runs/real/splits [--information-threshold 0.8]

PyTorch probabilities (the ONNX bundle gives the same within 1e-4); the information decision uses the
joint model's information head at the precision mode's threshold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from service.bundle import Head
from training.evaluation.predictors import model_probabilities
from training.evaluation.scoring import tune_head_thresholds
from training.evaluation.served_thresholds import served_labels, served_macro_f1, tune_served_thresholds
from training.modeling.saved import load_classifier
from training.splits import split_rows
from training.tables import read_labelled
from training.taxonomy import MAIN_LABELS, OTHERS, normalise_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("splits", type=Path, help="folder with curated.jsonl (train/validation) and test.jsonl")
    parser.add_argument("--information-threshold", type=float, default=0.8)
    args = parser.parse_args()
    model, tokenizer, card = load_classifier(args.model)
    _, validation = split_rows(args.splits / "curated.jsonl", default_source="curated")
    test = read_labelled(args.splits / "test.jsonl", default_source="test")
    routed = frozenset({OTHERS, "social"})
    main_head = card.heads[0]

    def gold(records):  # type: ignore[no-untyped-def]
        return [normalise_labels(r.labels, r.subcategories)[0] or (OTHERS,) for r in records]

    probabilities = {
        name: model_probabilities(model, tokenizer, card, [r.text for r in rows], progress=False)
        for name, rows in (("validation", validation), ("test", test))
    }
    information = {name: p["information"][:, 0] if "information" in p else None for name, p in probabilities.items()}
    label_f1 = tune_head_thresholds("emotion", card.heads[:2], validation, probabilities["validation"])["main"]
    served, _ = tune_served_thresholds(
        main_head,
        probabilities["validation"]["main"],
        information["validation"],
        gold(validation),
        routed_labels=routed,
        information_threshold=args.information_threshold,
    )
    results = {}
    for choice, thresholds in (("none (0.5)", {}), ("per-label F1", label_f1), ("served macro-F1", served)):
        head = Head.model_validate({**main_head.model_dump(), "thresholds": thresholds})
        row = {"thresholds": thresholds}
        for name, rows in (("validation", validation), ("test", test)):
            labels = served_labels(
                head,
                probabilities[name]["main"],
                information[name],
                routed_labels=routed,
                information_threshold=args.information_threshold,
            )
            row[name] = round(served_macro_f1(gold(rows), labels, list(MAIN_LABELS)), 4)
        results[choice] = row
        print(f"{choice:16s} validation {row['validation']:.4f}  test {row['test']:.4f}  {thresholds}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
