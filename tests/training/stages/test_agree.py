"""Agreement on synthetic LLM labels with a known amount of disagreement and of unnormalised spellings."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.fixtures.labelled import synthetic_records
from training.records import LabelledText
from training.stages.agree import agreement, annotate, decide_labels
from training.taxonomy import MAIN_LABELS, SCHEMA, SUB_LABELS

ROWS = 500
DISAGREE = 120  # v1 predicts another category on these rows
RESPELT = 60  # the LLM wrote an alias ("other", "Social"...) on these agreeing rows

ALIAS = {
    "others": "other",
    "social": "Social",
    "emotions_positive": "positive",
    "emotions_negative": "negative_emotion",
    "information": "info",
}


def _noisy_holdout(seed: int = 5) -> tuple[list[LabelledText], list[tuple[tuple[str, ...], tuple[str, ...]]]]:
    rng = random.Random(seed)
    records = synthetic_records(ROWS, seed=seed)
    order = list(range(ROWS))
    rng.shuffle(order)
    disagree, respelt = set(order[:DISAGREE]), set(order[DISAGREE : DISAGREE + RESPELT])
    predicted: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for index, record in enumerate(records):
        label = record.labels[0]
        if index in disagree:
            other = MAIN_LABELS[(MAIN_LABELS.index(label) + 1) % len(MAIN_LABELS)]
            predicted.append(((other,), (SCHEMA[other][0],)))
        else:
            predicted.append(((label,), (SCHEMA[label][0],)))
        if index in respelt:
            records[index] = LabelledText(
                id=record.id,
                text=record.text,
                labels=record.labels,
                subcategories=record.subcategories,
                source=record.source,
                extra={"raw_labels": [ALIAS[label]], "raw_subcategories": list(record.subcategories)},
            )
    return records, predicted


def test_agreement_rates_before_and_after_normalisation() -> None:
    records, predicted = _noisy_holdout()
    result = agreement(records, predicted)
    report = result.report
    assert report["after_normalisation"]["agreed"] == ROWS - DISAGREE
    assert report["after_normalisation"]["agreement"] == pytest.approx((ROWS - DISAGREE) / ROWS)
    assert report["before_normalisation"]["agreed"] == ROWS - DISAGREE - RESPELT
    assert report["normalisation"]["rows_changed"] == RESPELT
    assert int(result.agreed.sum()) == ROWS - DISAGREE
    per_category = report["after_normalisation"]["per_category"]
    assert sum(entry["llm"] for entry in per_category.values()) == ROWS
    assert sum(entry["agreed"] for entry in per_category.values()) == ROWS - DISAGREE
    for label, entry in per_category.items():
        assert entry["llm"] == ROWS // len(MAIN_LABELS), label
        assert entry["agreement"] == pytest.approx(entry["agreed"] / entry["llm"])
    assert report["after_normalisation"]["agreed_with_subcategories"] == ROWS - DISAGREE


def test_annotate_adds_v1_labels_and_flags() -> None:
    records, predicted = _noisy_holdout()
    result = agreement(records, predicted)
    annotated = annotate(records, predicted, result)
    assert [row.extra["agreed"] for row in annotated] == result.agreed.tolist()
    assert annotated[0].extra["v1_labels"] == list(predicted[0][0])
    assert annotated[0].text == records[0].text


def test_decide_labels_thresholds_fallback_and_sub_categories() -> None:
    main = np.zeros((3, len(MAIN_LABELS)))
    sub = np.zeros((3, len(SUB_LABELS)))
    main[0, MAIN_LABELS.index("social")] = 0.9
    sub[0, SUB_LABELS.index("curiosity")] = 0.3  # no sub over threshold: the best child of social
    main[1, MAIN_LABELS.index("information")] = 0.3  # nothing over threshold: the top main label
    main[1, MAIN_LABELS.index("others")] = 0.2
    main[2, MAIN_LABELS.index("others")] = 0.8  # others together with a real category is dropped
    main[2, MAIN_LABELS.index("emotions_positive")] = 0.7
    sub[2, SUB_LABELS.index("joy")] = 0.6
    decided = decide_labels(main, sub, threshold=0.5)
    assert decided[0] == (("social",), ("curiosity",))
    assert decided[1][0] == ("information",)
    assert decided[2] == (("emotions_positive",), ("joy",))


def test_length_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="3 records but 2 predictions"):
        agreement(synthetic_records(3), [(("others",), ("other",))] * 2)
