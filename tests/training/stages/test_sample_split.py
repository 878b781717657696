from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from training.splits import stratified_validation_mask
from training.stages.train_v1 import HOLDOUT, TEST, V1_TRAIN, assign_roles, resolve_size


def test_roles_have_exact_sizes_and_are_seeded() -> None:
    roles = assign_roles(1000, sample_size=300, test_size=0.1, seed=7)
    assert Counter(roles.tolist()) == {V1_TRAIN: 300, TEST: 100, HOLDOUT: 600}
    assert (assign_roles(1000, sample_size=300, test_size=0.1, seed=7) == roles).all()
    assert (assign_roles(1000, sample_size=300, test_size=0.1, seed=8) != roles).any()


def test_sizes_as_share_or_count() -> None:
    assert resolve_size(0.25, 1000, name="x") == 250
    assert resolve_size(40, 1000, name="x") == 40
    with pytest.raises(ValueError, match="whole number"):
        resolve_size(2.5, 1000, name="x")


def test_a_sample_that_leaves_no_holdout_is_refused() -> None:
    with pytest.raises(ValueError, match=r"sample_size=100000 \(100000 rows\).*leave no holdout out of 3000"):
        assign_roles(3000, sample_size=100_000, seed=0)


def test_stratified_split_takes_the_share_of_every_stratum() -> None:
    strata = ["a"] * 100 + ["b"] * 50 + ["c"] * 10 + ["d"]
    mask = stratified_validation_mask(strata, validation_fraction=0.2, seed=3)
    chosen = Counter(s for s, m in zip(strata, mask, strict=True) if m)
    assert chosen == {"a": 20, "b": 10, "c": 2}  # the lone "d" row stays in training
    again = stratified_validation_mask(strata, validation_fraction=0.2, seed=3)
    assert np.array_equal(mask, again)


def test_test_rows_can_be_stratified_by_source_and_label() -> None:
    strata = ["dd/information"] * 600 + ["dd/social"] * 200 + ["lin/information"] * 150 + ["zcj/others"] * 50
    roles = assign_roles(1000, sample_size=300, test_size=0.1, seed=7, strata=strata)
    test = Counter(s for s, role in zip(strata, roles, strict=True) if role == TEST)
    assert test == {"dd/information": 60, "dd/social": 20, "lin/information": 15, "zcj/others": 5}
    assert Counter(roles.tolist())[V1_TRAIN] == 300
    assert (assign_roles(1000, sample_size=300, test_size=0.1, seed=7, strata=strata) == roles).all()
    with pytest.raises(ValueError, match="3 strata for 1000 rows"):
        assign_roles(1000, sample_size=300, test_size=0.1, seed=7, strata=["a", "b", "c"])
