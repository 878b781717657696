"""Selection on hand-made probabilities: each score's ordering, disagreement, duplicates, diversity, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from training.labelling.selection import (
    ModelScores,
    bigrams,
    disagreement,
    diverse_subset,
    entropy_uncertainty,
    first_of_each,
    jaccard_distance,
    margin_uncertainty,
    select,
    selection_report,
    threshold_uncertainty,
    uncertainty,
)

LABELS = ("information", "emotions_positive", "emotions_negative", "social", "others")


def _scores(main: list[list[float]], served: list[str], information: list[float] | None = None) -> ModelScores:
    rows = len(main)
    return ModelScores(
        main=np.array(main, dtype=np.float64),
        labels=LABELS,
        served=tuple(served),
        information=np.array(information if information is not None else [np.nan] * rows),
        information_threshold=0.8,
    )


SURE = [0.02, 0.97, 0.01, 0.02, 0.01]  # one clear label
TORN = [0.02, 0.60, 0.58, 0.02, 0.01]  # two labels close together
FLAT = [0.30, 0.30, 0.30, 0.30, 0.30]  # no idea at all


def test_margin_and_entropy_order_sure_torn_flat() -> None:
    main = np.array([SURE, TORN, FLAT])
    margin = margin_uncertainty(main)
    entropy = entropy_uncertainty(main)
    assert margin[0] < margin[1] < margin[2] == pytest.approx(1.0)
    assert entropy[0] < entropy[1] < entropy[2] == pytest.approx(1.0)
    assert np.all((entropy >= 0) & (entropy <= 1)) and np.all((margin >= 0) & (margin <= 1))
    assert entropy_uncertainty(np.array([[1.0, 0, 0, 0, 0]]))[0] == pytest.approx(0.0)


def test_threshold_closeness_only_for_routed_comments() -> None:
    closeness = threshold_uncertainty(np.array([0.8, 0.79, 0.5, 0.0, 1.0, np.nan]), 0.8)
    assert closeness[0] == pytest.approx(1.0)
    assert closeness[1] > closeness[2] > closeness[3] == pytest.approx(0.0)
    assert closeness[4] == pytest.approx(0.75)  # 0.2 above a 0.8 threshold, on a reach of 0.8
    assert closeness[5] == 0.0  # not routed: no information decision was taken


def test_disagreement_counts_a_different_label_and_the_distance() -> None:
    student = _scores([SURE, SURE, TORN], ["emotions_positive", "emotions_positive", "emotions_positive"])
    teacher = _scores(
        [SURE, [0.02, 0.50, 0.55, 0.02, 0.01], [0.02, 0.58, 0.60, 0.02, 0.01]],
        ["emotions_positive", "emotions_negative", "emotions_negative"],
    )
    values = disagreement(student, teacher)
    assert values[0] == pytest.approx(0.0)
    assert values[1] > values[2] > 0.5  # both served differently; the first is also farther apart
    assert np.all(values <= 1.0)
    with pytest.raises(ValueError, match="different main labels"):
        disagreement(
            student, ModelScores(student.main[:, ::-1], LABELS[::-1], student.served, student.information, 0.8)
        )


def test_strategies() -> None:
    scores = _scores([SURE, TORN, SURE], ["emotions_positive"] * 3, [np.nan, np.nan, 0.79])
    assert np.argmax(uncertainty(scores, "margin")) == 1
    assert np.argmax(uncertainty(scores, "threshold")) == 2
    mixed = uncertainty(scores, "mixed")  # the least sure decision: TORN's main head, the third's routing
    assert mixed[0] < mixed[1] and mixed[0] < mixed[2] and mixed[2] > 0.9
    other = _scores([SURE, TORN, TORN], ["emotions_positive", "emotions_positive", "emotions_negative"])
    assert np.argmax(uncertainty(scores, "disagreement", other)) == 2
    assert uncertainty(scores, "mixed", other)[2] > mixed[2] / 2
    with pytest.raises(ValueError, match="second model set"):
        uncertainty(scores, "disagreement")


def test_first_of_each_collapses_duplicates() -> None:
    firsts, counts = first_of_each(["哈哈哈", "awsl", "哈哈哈", "哈哈哈", "前方高能"])
    assert firsts == [0, 1, 4] and counts == [3, 1, 1]


def test_bigram_distance() -> None:
    assert jaccard_distance(bigrams("前方高能"), bigrams("前方高能")) == 0.0
    assert jaccard_distance(bigrams("前方高能"), bigrams("awsl")) == 1.0
    assert 0 < jaccard_distance(bigrams("前方高能！"), bigrams("前方高能！！")) < 0.5
    assert bigrams("哈") == frozenset({"哈"})


def test_diversity_skips_near_duplicates() -> None:
    texts = ["前方高能预警", "前方高能预警！", "前方高能预警！！", "这首曲子叫什么", "打卡打卡"]
    # the three near-duplicates are the most uncertain; diversity takes one of them, then the others
    assert diverse_subset(texts, [0, 1, 2, 3, 4], 3) == [0, 3, 4]
    scores = np.array([0.9, 0.89, 0.88, 0.5, 0.4])
    assert select(texts, scores, count=3, seed=0) == [0, 3, 4]
    assert select(texts, scores, count=3, seed=0, pool_factor=1) == [0, 1, 2]  # no room for diversity
    assert sorted(select(texts, scores, count=10, seed=0)) == [0, 1, 2, 3, 4]


def test_selection_is_seeded_and_deterministic() -> None:
    rng = np.random.default_rng(4)
    texts = [f"评论{index}号{'哈' * (index % 7)}" for index in range(200)]
    scores = np.round(rng.random(200), 1)  # many ties: the seed decides their order
    first = select(texts, scores, count=20, seed=1)
    assert first == select(texts, scores, count=20, seed=1)
    assert len(set(first)) == 20
    assert first != select(texts, scores, count=20, seed=2)
    assert min(scores[first]) >= np.sort(scores)[::-1][99]  # all from the 5 x 20 most uncertain


def test_bad_counts() -> None:
    with pytest.raises(ValueError, match="count must be at least 1"):
        select(["a"], np.array([0.5]), count=0, seed=0)
    with pytest.raises(ValueError, match="1 texts but 2 scores"):
        select(["a"], np.array([0.5, 0.1]), count=1, seed=0)


def test_report_counts_per_served_label() -> None:
    report = selection_report(
        ["social", "social", "others"], np.array([0.9, 0.5, 0.7]), considered=10, strategy="mixed"
    )
    assert report["selected"] == 3 and report["considered"] == 10
    assert report["per_served_label"]["social"] == {"count": 2, "uncertainty": {"min": 0.5, "median": 0.7, "max": 0.9}}
    assert report["uncertainty"]["max"] == 0.9
