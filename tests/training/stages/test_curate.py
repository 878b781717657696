"""Curation on a synthetic annotated holdout with known pools: exact draw counts and provenance."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.fixtures.labelled import synthetic_records
from training.records import LabelledText
from training.stages.curate import (
    AGREED,
    AGREED_OTHERS,
    DISAGREED_TO_OTHERS,
    MANUAL,
    Settings,
    curate,
)

ROWS = 1000  # 200 per main category
# Agreed: 600 rows not labelled others + 100 labelled others; disagreed: 300.
AGREED_NON_OTHERS, AGREED_ONLY_OTHERS, DISAGREED = 600, 100, 300


def _holdout() -> tuple[list[LabelledText], np.ndarray]:
    records = synthetic_records(ROWS, seed=11)
    others = [i for i, r in enumerate(records) if r.labels == ("others",)]
    rest = [i for i, r in enumerate(records) if r.labels != ("others",)]
    agreed = np.zeros(ROWS, dtype=bool)
    agreed[rest[:AGREED_NON_OTHERS]] = True
    agreed[others[:AGREED_ONLY_OTHERS]] = True
    return records, agreed


def test_reference_rates_give_exact_counts_and_provenance() -> None:
    holdout, agreed = _holdout()
    manual = synthetic_records(40, seed=99, source="manual", prefix="m")
    result = curate(holdout, agreed, manual, settings=Settings(), seed=1)
    provenance = Counter(record.extra["provenance"] for record in result.records)
    assert provenance == {
        AGREED: AGREED_NON_OTHERS,
        AGREED_OTHERS: round(0.15 * AGREED_ONLY_OTHERS),
        DISAGREED_TO_OTHERS: round(0.05 * DISAGREED),
        MANUAL: 40,
    }
    assert result.counts["pools"] == {AGREED: 600, AGREED_OTHERS: 100, DISAGREED_TO_OTHERS: 300, MANUAL: 40}
    assert result.counts["rows"] == len(result.records) == 600 + 15 + 15 + 40


def test_disagreed_rows_are_relabelled_others_and_keep_the_llm_labels() -> None:
    holdout, agreed = _holdout()
    result = curate(holdout, agreed, settings=Settings(disagreed_to_others_rate=1.0), seed=1)
    relabelled = [r for r in result.records if r.extra["provenance"] == DISAGREED_TO_OTHERS]
    assert len(relabelled) == DISAGREED
    assert {(r.labels, r.subcategories) for r in relabelled} == {(("others",), ("other",))}
    original = {r.id: r.labels for r in holdout}
    assert all(tuple(r.extra["llm_labels"]) == original[r.id] for r in relabelled)
    assert any(r.extra["llm_labels"] != ["others"] for r in relabelled)


def test_split_is_stratified_80_20() -> None:
    holdout, agreed = _holdout()
    result = curate(holdout, agreed, settings=Settings(agreed_others_rate=1.0), seed=2)
    by_label: dict[str, Counter[str]] = {}
    for record in result.records:
        by_label.setdefault(record.labels[0], Counter())[record.extra["split"]] += 1
    for label, counts in by_label.items():
        total = counts["train"] + counts["validation"]
        assert counts["validation"] == round(0.2 * total), label
    assert result.counts["validation"] == int(result.validation.sum())
    assert len(result.split("train")) + len(result.split("validation")) == len(result.records)


def test_seeded_and_one_rate_does_not_reshuffle_the_other_pools() -> None:
    holdout, agreed = _holdout()
    base = curate(holdout, agreed, settings=Settings(agreed_rate=0.5), seed=4)
    again = curate(holdout, agreed, settings=Settings(agreed_rate=0.5), seed=4)
    assert [r.id for r in base.records] == [r.id for r in again.records]
    changed = curate(holdout, agreed, settings=Settings(agreed_rate=0.5, agreed_others_rate=0.3), seed=4)

    def ids(result: object, provenance: str) -> list[str]:
        return [r.id for r in result.records if r.extra["provenance"] == provenance]  # type: ignore[attr-defined]

    assert ids(base, AGREED) == ids(changed, AGREED)
    assert ids(base, DISAGREED_TO_OTHERS) == ids(changed, DISAGREED_TO_OTHERS)
    assert len(ids(changed, AGREED_OTHERS)) == 30


def test_manual_labels_win_over_holdout_rows_with_the_same_text() -> None:
    holdout, agreed = _holdout()
    manual = [
        LabelledText(id="m1", text=holdout[0].text, labels=("social",), subcategories=("interaction",), source="manual")
    ]
    result = curate(holdout, agreed, manual, settings=Settings(disagreed_to_others_rate=1.0), seed=1)
    same_text = [r for r in result.records if r.text == holdout[0].text]
    assert [(r.id, r.extra["provenance"]) for r in same_text] == [("m1", MANUAL)]
    assert result.counts["holdout_rows_dropped_as_manual_duplicates"] == 1


def test_mismatched_flags_are_refused() -> None:
    holdout, agreed = _holdout()
    with pytest.raises(ValueError, match="1000 holdout rows but 999 agreement flags"):
        curate(holdout, agreed[:-1], settings=Settings(), seed=0)
