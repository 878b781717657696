"""Train/validation splits: the split names and column, seeded stratified masks, and reading a split back.

Curate writes ``split`` (``train``/``validation``) on every curated row; train-v2 trains on one and
stops early on the other; export tunes thresholds and evaluate scores on ``validation`` rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from training.records import LabelledText
from training.tables import TableError, read_labelled

SPLIT_COLUMN = "split"
TRAIN = "train"
VALIDATION = "validation"


def stratified_validation_mask(strata: Sequence[Hashable], *, validation_fraction: float, seed: int) -> np.ndarray:
    """True for validation rows: ``round(fraction * n)`` rows of every stratum of n rows.

    A stratum too small to give one validation row stays in training (stratification "where
    possible"); the overall validation share is then slightly below ``validation_fraction``.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, stratum in enumerate(strata):
        groups[stratum].append(index)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(strata), dtype=bool)
    for key in sorted(groups, key=str):
        members = np.asarray(groups[key])
        count = round(validation_fraction * len(members))
        if count and len(members) > 1:
            mask[rng.choice(members, size=min(count, len(members) - 1), replace=False)] = True
    return mask


def split_rows(path: Path, *, default_source: str) -> tuple[list[LabelledText], list[LabelledText]]:
    """``(train, validation)`` rows of a table by its ``split`` column, which must hold only those two names."""
    records = read_labelled(path, default_source=default_source)
    splits = {str(record.extra.get(SPLIT_COLUMN)) for record in records}
    if not splits <= {TRAIN, VALIDATION}:
        raise TableError(path, f"the 'split' column must hold train/validation, found {sorted(splits)}")
    return (
        [record for record in records if record.extra.get(SPLIT_COLUMN) == TRAIN],
        [record for record in records if record.extra.get(SPLIT_COLUMN) == VALIDATION],
    )


def validation_rows(path: Path | None) -> list[LabelledText]:
    """The rows of ``path`` with ``split == validation`` if it has a split column, else all rows."""
    if path is None:
        return []
    records = read_labelled(path, default_source="validation")
    if any(SPLIT_COLUMN in record.extra for record in records):
        return [record for record in records if record.extra.get(SPLIT_COLUMN) == VALIDATION]
    return records
