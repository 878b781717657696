"""Label sets <-> multi-hot target matrices, in the column order of the bundle heads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.polarity_sets import is_polarity_only
from training.records import LabelledText
from training.taxonomy import INFORMATION, MAIN_LABELS, OTHERS, SUB_LABELS, normalise_labels

# Labels that send a comment to the information model at serving time (see DESIGN.md routing).
ROUTED_TO_INFORMATION = frozenset({OTHERS, "social"})


def normalised(record: LabelledText) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(main labels, sub-categories)`` of a record after taxonomy normalisation."""
    mains, subs, _unknown = normalise_labels(record.labels, record.subcategories)
    return mains, subs


def multi_hot(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """(rows, len(labels)) float32 matrix with 1 where a row carries the label."""
    column = {label: index for index, label in enumerate(labels)}
    matrix = np.zeros((len(label_sets), len(labels)), dtype=np.float32)
    for row, names in enumerate(label_sets):
        for name in names:
            if name in column:
                matrix[row, column[name]] = 1.0
    return matrix


def emotion_targets(records: Sequence[LabelledText]) -> tuple[np.ndarray, np.ndarray]:
    """Main and sub-category target matrices (``MAIN_LABELS`` / ``SUB_LABELS`` columns).

    A polarity-only row (``training.polarity_sets``: a public emotion set) has its main labels but no
    known sub-category: its sub row is NaN, which the loss leaves out."""
    pairs = [normalised(record) for record in records]
    main = multi_hot([mains for mains, _ in pairs], MAIN_LABELS)
    sub = multi_hot([subs for _, subs in pairs], SUB_LABELS)
    sub[[is_polarity_only(record) for record in records]] = np.nan
    return main, sub


def information_targets(records: Sequence[LabelledText], *, negatives: str = "routed") -> tuple[np.ndarray, np.ndarray]:
    """``(keep mask, targets)`` of the information-vs-others task.

    Positives are rows labelled ``information``. Negatives depend on ``negatives``:

    - ``routed``: rows whose labels are all in {others, social}: the comments the router sends
      to the information model at serving time; purely emotional rows are left out, since the
      emotion model keeps them and the information model never sees them;
    - ``all``: every row without ``information``.
    """
    if negatives not in ("routed", "all"):
        raise ValueError(f"negatives must be 'routed' or 'all', got {negatives!r}")
    keep = np.zeros(len(records), dtype=bool)
    targets = np.zeros((len(records), 1), dtype=np.float32)
    for row, record in enumerate(records):
        mains, _ = normalised(record)
        if INFORMATION in mains:
            keep[row] = True
            targets[row, 0] = 1.0
        elif negatives == "all" or set(mains) <= ROUTED_TO_INFORMATION:
            keep[row] = True
    return keep, targets


def joint_targets(records: Sequence[LabelledText], *, negatives: str = "routed") -> list[np.ndarray]:
    """Main, sub-category and information targets of the joint model; the information column is NaN
    (no label: left out of that head's loss) on the rows ``information_targets`` does not keep."""
    main, sub = emotion_targets(records)
    keep, information = information_targets(records, negatives=negatives)
    information[~keep] = np.nan
    return [main, sub, information]
