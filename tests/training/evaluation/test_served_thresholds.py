"""Thresholds tuned for the served label: the served rule decides each row, coordinate ascent improves it."""

from __future__ import annotations

import numpy as np
import pytest

from service.bundle import Head
from training.evaluation.served_thresholds import served_labels, served_macro_f1, tune_served_thresholds

MAIN = Head(name="main", output="main_logits", labels=["information", "emotions_negative", "social", "others"])
ROUTED = frozenset({"others", "social"})


def test_served_labels_follow_the_routing_rule() -> None:
    probabilities = np.array([[0.6, 0.7, 0.1, 0.1], [0.1, 0.2, 0.9, 0.1], [0.1, 0.2, 0.3, 0.2]])
    information = np.array([0.1, 0.95, 0.9])
    labels = served_labels(MAIN, probabilities, information, routed_labels=ROUTED, information_threshold=0.8)
    # row 0: both clear 0.5, the most probable wins, not routed; row 1: social routed, information head 0.95
    # reaches 0.8; row 2: nothing clears, argmax social, routed, 0.9 -> information
    assert labels == ["emotions_negative", "information", "information"]
    assert served_labels(MAIN, probabilities, None, routed_labels=ROUTED, information_threshold=0.8)[1] == "social"


def test_tuning_raises_an_inflated_class_threshold_until_the_served_label_is_right() -> None:
    # information rows whose (class-weighted, inflated) negative probability beats the information one
    information_rows = np.tile([0.6, 0.7, 0.1, 0.05], (20, 1))
    negative_rows = np.tile([0.3, 0.9, 0.1, 0.05], (5, 1))
    probabilities = np.vstack([information_rows, negative_rows])
    gold = [("information",)] * 20 + [("emotions_negative",)] * 5
    before = served_macro_f1(
        gold, served_labels(MAIN, probabilities, None, routed_labels=ROUTED, information_threshold=0.8), MAIN.labels[:2]
    )
    thresholds, after = tune_served_thresholds(
        MAIN, probabilities, None, gold, routed_labels=ROUTED, information_threshold=0.8
    )
    assert before < 0.5
    assert after == pytest.approx(1.0)
    assert 0.7 < thresholds["emotions_negative"] <= 0.9
    with pytest.raises(ValueError, match="gold rows"):
        tune_served_thresholds(MAIN, probabilities, None, gold[:3], routed_labels=ROUTED, information_threshold=0.8)
