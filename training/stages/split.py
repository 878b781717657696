"""Seeded train/validation splits, stratified by a key per row where the group is large enough."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np


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
