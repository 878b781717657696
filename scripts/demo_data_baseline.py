"""Sanity baseline for the demo set: are its labels learnable from the text alone?

Character 1-3-gram TF-IDF + logistic regression, stratified k-fold cross-validation on the first
main label of each comment (and on information vs. the rest); prints macro-F1 and a per-class table.
Needs the `train` extra (scikit-learn). A floor for the neural models, not a claim about real traffic.

    python scripts/demo_data_baseline.py [--folds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys

from training.demo_data import load_demo_labels
from training.taxonomy import INFORMATION, MAIN_LABELS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import classification_report, f1_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
    except ImportError:
        print("error: scikit-learn is missing; pip install -e '.[train]'", file=sys.stderr)
        return 1

    from service.text import Preprocessing, preprocess

    records = load_demo_labels()
    config = Preprocessing()
    texts = [preprocess(record.text, config) for record in records]
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    tasks = {
        "main label (first of each comment)": [record.labels[0] for record in records],
        "information vs. the rest": [
            INFORMATION if INFORMATION in record.labels else "not_information" for record in records
        ],
    }
    for task, targets in tasks.items():
        model = make_pipeline(
            TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True),
            LogisticRegression(max_iter=2000, class_weight="balanced"),
        )
        predicted = cross_val_predict(model, texts, targets, cv=folds)
        classes = [label for label in (*MAIN_LABELS, "not_information") if label in set(targets)]
        macro = f1_score(targets, predicted, labels=classes, average="macro")
        print(f"## {task}: {args.folds}-fold macro-F1 {macro:.3f} ({len(records)} comments)")
        print(classification_report(targets, predicted, labels=classes, digits=3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
