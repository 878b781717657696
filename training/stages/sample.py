"""Stage 3a: split the pseudo-labelled table into the v1 training sample, a test set and the holdout.

The v1 sample (reference: 100K rows) trains BERT v1; the holdout is what v1 predicts for the
agreement stage and what curation draws from. An optional test set is kept out of everything
(v1, agreement, curation) so the final models can be scored on rows no stage has seen.
"""

from __future__ import annotations

import numpy as np

V1_TRAIN = "v1_train"
HOLDOUT = "holdout"
TEST = "test"


def resolve_size(size: float, total: int, *, name: str) -> int:
    """``size`` as a row count: a float in (0, 1) is a share of ``total``, anything else a count."""
    if size < 0:
        raise ValueError(f"{name} must be >= 0, got {size}")
    count = round(size * total) if 0 < size < 1 else int(size)
    if count != size and not 0 < size < 1:
        raise ValueError(f"{name} must be a whole number of rows or a share in (0, 1), got {size}")
    return count


def assign_roles(total: int, *, sample_size: float, test_size: float = 0, seed: int) -> np.ndarray:
    """Role of every row (``V1_TRAIN``, ``TEST`` or ``HOLDOUT``), drawn uniformly at random, seeded."""
    train_count = resolve_size(sample_size, total, name="sample_size")
    test_count = resolve_size(test_size, total, name="test_size")
    if train_count < 1:
        raise ValueError(f"sample_size={sample_size} gives no v1 training rows out of {total}")
    if train_count + test_count >= total:
        raise ValueError(
            f"sample_size={sample_size} ({train_count} rows) + test_size={test_size} ({test_count} rows) "
            f"leave no holdout out of {total} rows; lower them"
        )
    order = np.random.default_rng(seed).permutation(total)
    roles = np.full(total, HOLDOUT, dtype=object)
    roles[order[:train_count]] = V1_TRAIN
    roles[order[train_count : train_count + test_count]] = TEST
    return roles
