"""Figures of a model's probabilities against a labelled-text table (evaluate and export use them).

Pure: takes records and probabilities per head (from ``training.evaluation.predictors``), returns a
JSON-ready report. Per head: per-class P/R/F1/support with micro/macro/weighted averages at the
head's default threshold, at the model's own per-class thresholds, and at thresholds tuned on a
validation table when one is given; a threshold sweep and average precision; for the main head,
the top-1 confusion between main categories. Emotion models are scored against the normalised
labels; information models (and a joint model's ``information`` head) against information-vs-others
(``training.modeling.targets``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.bundle import INFORMATION_HEAD, Head
from training.evaluation.metrics import (
    DEFAULT_GRID,
    average_precision,
    classification_report,
    threshold_sweep,
    top1_confusion,
    tune_thresholds,
)
from training.modeling.targets import emotion_targets, information_targets
from training.records import LabelledText


def head_targets(
    task: str, heads: Sequence[Head], records: Sequence[LabelledText], *, negatives: str = "routed"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per head name, ``(rows kept, targets of the kept rows)`` of ``records`` for a model of ``task``.

    The emotion heads (``main``, ``sub``) score every row; an information head (an information model's,
    or the ``information`` head of a joint emotion model) scores the rows of information-vs-others."""
    if task == "information":
        keep, targets = information_targets(records, negatives=negatives)
        return {heads[0].name: (keep, targets[keep])}
    main, sub = emotion_targets(records)
    every = np.ones(len(records), dtype=bool)
    by_name = {"main": (every, main), "sub": (every, sub)}
    if any(head.name == INFORMATION_HEAD for head in heads):
        keep, targets = information_targets(records, negatives=negatives)
        by_name[INFORMATION_HEAD] = (keep, targets[keep])
    missing = [head.name for head in heads if head.name not in by_name]
    if missing:
        raise ValueError(
            f"cannot score heads {missing}: emotion targets exist for 'main', 'sub' and {INFORMATION_HEAD!r} only"
        )
    return {head.name: by_name[head.name] for head in heads}


def tune_head_thresholds(
    task: str,
    heads: Sequence[Head],
    records: Sequence[LabelledText],
    probabilities: Mapping[str, np.ndarray],
    *,
    negatives: str = "routed",
    min_support: int = 5,
    grid: Sequence[float] = DEFAULT_GRID,
) -> dict[str, dict[str, float]]:
    """Per head, per label, the F1-best threshold on ``records`` (a validation table)."""
    targets = head_targets(task, heads, records, negatives=negatives)
    return {
        head.name: tune_thresholds(
            targets[head.name][1],
            probabilities[head.name][targets[head.name][0]],
            head.labels,
            grid=grid,
            default=head.default_threshold,
            min_support=min_support,
        )
        for head in heads
    }


def evaluate(
    task: str,
    heads: Sequence[Head],
    records: Sequence[LabelledText],
    probabilities: Mapping[str, np.ndarray],
    *,
    tuned_thresholds: Mapping[str, Mapping[str, float]] | None = None,
    negatives: str = "routed",
    grid: Sequence[float] = DEFAULT_GRID,
) -> dict[str, Any]:
    """The report of one model on one table (JSON-ready; see the module docstring)."""
    targets = head_targets(task, heads, records, negatives=negatives)
    first_kept = targets[heads[0].name][0]
    report: dict[str, Any] = {"task": task, "rows": len(records), "rows_scored": int(first_kept.sum()), "heads": {}}
    for head in heads:
        keep, truth = targets[head.name]
        scores = probabilities[head.name][keep]
        threshold_sets: dict[str, float | Mapping[str, float]] = {"default": head.default_threshold}
        if head.thresholds:
            threshold_sets["model"] = {label: head.threshold(label) for label in head.labels}
        if tuned_thresholds and head.name in tuned_thresholds:
            threshold_sets["tuned"] = tuned_thresholds[head.name]
        entry: dict[str, Any] = {
            "labels": list(head.labels),
            "rows_scored": int(keep.sum()),
            "at": {
                name: classification_report(truth, scores, head.labels, thresholds=values)
                for name, values in threshold_sets.items()
            },
            "average_precision": average_precision(truth, scores, head.labels),
            "sweep": threshold_sweep(truth, scores, head.labels, grid),
        }
        if head.name == "main" and len(head.labels) > 1:
            entry["confusion"] = top1_confusion(truth, scores, head.labels)
        report["heads"][head.name] = entry
    return report


def headline(report: Mapping[str, Any], *, head: str | None = None, at: str | None = None) -> dict[str, Any]:
    """A few figures for bundle metadata and logs: macro/micro F1 of the first (or named) head."""
    name = head or next(iter(report["heads"]))
    entry = report["heads"][name]
    chosen = at if at in entry["at"] else ("tuned" if "tuned" in entry["at"] else "default")
    figures = entry["at"][chosen]
    result: dict[str, Any] = {
        "head": name,
        "thresholds": chosen,
        "macro_f1": figures["macro"]["f1"],
        "micro_f1": figures["micro"]["f1"],
        "weighted_f1": figures["weighted"]["f1"],
        "rows": entry.get("rows_scored", report["rows_scored"]),
    }
    result.update({f"f1_{label}": values["f1"] for label, values in figures["per_class"].items()})
    return result
