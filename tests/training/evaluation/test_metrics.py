from __future__ import annotations

import numpy as np
import pytest

from training.evaluation.metrics import (
    average_precision,
    classification_report,
    threshold_sweep,
    top1_confusion,
    tune_thresholds,
)

LABELS = ["a", "b", "c"]
TARGETS = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
PROBS = np.array(
    [[0.9, 0.1, 0.2], [0.4, 0.2, 0.1], [0.6, 0.8, 0.1], [0.1, 0.7, 0.9], [0.8, 0.3, 0.1]], dtype=np.float32
)


def test_per_class_and_averages_by_hand() -> None:
    report = classification_report(TARGETS, PROBS, LABELS, thresholds=0.5)
    a, b, c = (report["per_class"][label] for label in LABELS)
    # a: predicted rows 0, 2, 4; true rows 0, 1, 4 -> tp 2, P 2/3, R 2/3
    assert (a["precision"], a["recall"], a["support"], a["predicted"]) == pytest.approx((2 / 3, 2 / 3, 3, 3))
    # b: predicted rows 2, 3; true rows 2, 3, 4 -> tp 2, P 1, R 2/3, F1 0.8
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((1.0, 2 / 3, 0.8))
    # c: absent from the targets, predicted once -> left out of macro, listed
    assert (c["support"], c["predicted"], c["precision"]) == (0, 1, 0.0)
    assert report["absent_labels"] == ["c"]
    assert report["macro"]["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert report["weighted"]["f1"] == pytest.approx((3 * 2 / 3 + 3 * 0.8) / 6)
    # micro: tp 4, predicted 6, support 6
    assert report["micro"]["precision"] == pytest.approx(4 / 6)
    assert report["micro"]["recall"] == pytest.approx(4 / 6)


def test_per_class_thresholds_are_applied() -> None:
    report = classification_report(TARGETS, PROBS, LABELS, thresholds={"a": 0.35, "b": 0.25})
    assert report["per_class"]["a"]["recall"] == 1.0
    assert report["per_class"]["b"]["recall"] == 1.0
    assert report["per_class"]["c"]["threshold"] == 0.5


def test_tuning_finds_the_separating_threshold_and_keeps_the_default_for_rare_labels() -> None:
    rng = np.random.default_rng(0)
    truth = (rng.random((400, 1)) < 0.3).astype(np.float32)
    probabilities = np.where(truth == 1, rng.uniform(0.2, 0.3, truth.shape), rng.uniform(0.0, 0.15, truth.shape))
    tuned = tune_thresholds(truth, probabilities, ["x"])
    assert 0.15 < tuned["x"] <= 0.2
    assert classification_report(truth, probabilities, ["x"], thresholds=tuned)["per_class"]["x"]["f1"] == 1.0
    assert tune_thresholds(truth[:3] * 0, probabilities[:3], ["x"])["x"] == 0.5
    assert tune_thresholds(truth, probabilities, ["x"], min_support=10_000)["x"] == 0.5


def test_sweep_and_average_precision() -> None:
    sweep = threshold_sweep(TARGETS, PROBS, LABELS, grid=[0.05, 0.5, 0.95])
    assert [point["recall"] for point in sweep["a"]] == [1.0, pytest.approx(2 / 3), 0.0]
    ap = average_precision(TARGETS, PROBS, LABELS)
    assert ap["c"] is None
    assert 0 < ap["a"] <= 1  # type: ignore[operator]


def test_top1_confusion_uses_single_label_rows() -> None:
    confusion = top1_confusion(TARGETS, PROBS, LABELS)
    assert confusion["rows"] == 4
    assert confusion["rows_left_out"] == 1
    assert confusion["matrix"] == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert confusion["accuracy"] == pytest.approx(0.75)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must both be \(rows, 3\)"):
        classification_report(TARGETS, PROBS[:, :2], LABELS)
