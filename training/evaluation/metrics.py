"""Multi-label classification figures over (rows, labels) matrices of targets and probabilities.

Pure numpy (plus scikit-learn for precision-recall curves). Conventions:

- a label is predicted when its probability is >= its threshold;
- precision of a label never predicted, and recall of a label never present, are 0;
- macro averages are over labels with support > 0 (labels absent from the data are listed apart,
  so a missing class does not pull the average to 0); weighted averages weight by support;
  micro averages pool every decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_GRID: tuple[float, ...] = tuple(round(0.05 * step, 2) for step in range(1, 20))


def _thresholds(labels: Sequence[str], thresholds: float | Mapping[str, float]) -> np.ndarray:
    if isinstance(thresholds, Mapping):
        return np.asarray([thresholds.get(label, 0.5) for label in labels], dtype=np.float64)
    return np.full(len(labels), float(thresholds))


def _check(targets: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> None:
    if targets.shape != probabilities.shape or targets.ndim != 2 or targets.shape[1] != len(labels):
        raise ValueError(
            f"targets {targets.shape} and probabilities {probabilities.shape} must both be (rows, {len(labels)})"
        )


def _prf(true_positive: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> tuple[Any, Any, Any]:
    precision = np.where(predicted > 0, true_positive / np.maximum(predicted, 1), 0.0)
    recall = np.where(support > 0, true_positive / np.maximum(support, 1), 0.0)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return precision, recall, f1


def classification_report(
    targets: np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[str],
    *,
    thresholds: float | Mapping[str, float] = 0.5,
) -> dict[str, Any]:
    """Per-class precision/recall/F1/support and micro/macro/weighted averages."""
    _check(targets, probabilities, labels)
    cut = _thresholds(labels, thresholds)
    predicted = probabilities >= cut
    truth = targets >= 0.5
    true_positive = (predicted & truth).sum(axis=0).astype(np.float64)
    predicted_count = predicted.sum(axis=0).astype(np.float64)
    support = truth.sum(axis=0).astype(np.float64)
    precision, recall, f1 = _prf(true_positive, predicted_count, support)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(predicted_count[i]),
            "threshold": float(cut[i]),
        }
        for i, label in enumerate(labels)
    }
    present = support > 0
    micro_p, micro_r, micro_f1 = _prf(
        np.asarray(true_positive.sum()), np.asarray(predicted_count.sum()), np.asarray(support.sum())
    )
    total = float(support.sum())

    def average(values: np.ndarray, weights: np.ndarray | None) -> float:
        if not present.any():
            return 0.0
        if weights is None:
            return float(values[present].mean())
        return float((values * weights).sum() / total) if total else 0.0

    return {
        "rows": len(targets),
        "per_class": per_class,
        "micro": {"precision": float(micro_p), "recall": float(micro_r), "f1": float(micro_f1), "support": int(total)},
        "macro": {
            "precision": average(precision, None),
            "recall": average(recall, None),
            "f1": average(f1, None),
            "labels": int(present.sum()),
        },
        "weighted": {
            "precision": average(precision, support),
            "recall": average(recall, support),
            "f1": average(f1, support),
        },
        "absent_labels": [label for i, label in enumerate(labels) if not present[i]],
    }


def threshold_sweep(
    targets: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], grid: Sequence[float] = DEFAULT_GRID
) -> dict[str, list[dict[str, float]]]:
    """Per label: precision, recall and F1 at every threshold of ``grid``."""
    _check(targets, probabilities, labels)
    truth = targets >= 0.5
    support = truth.sum(axis=0).astype(np.float64)
    sweep: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    for threshold in grid:
        predicted = probabilities >= threshold
        true_positive = (predicted & truth).sum(axis=0).astype(np.float64)
        precision, recall, f1 = _prf(true_positive, predicted.sum(axis=0).astype(np.float64), support)
        for i, label in enumerate(labels):
            sweep[label].append(
                {
                    "threshold": float(threshold),
                    "precision": float(precision[i]),
                    "recall": float(recall[i]),
                    "f1": float(f1[i]),
                }
            )
    return sweep


def tune_thresholds(
    targets: np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[str],
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    default: float = 0.5,
    min_support: int = 1,
) -> dict[str, float]:
    """Per label, the threshold of ``grid`` with the best F1 (ties: the one closest to ``default``).
    Labels with fewer than ``min_support`` positives keep ``default``: one or two examples are noise."""
    sweep = threshold_sweep(targets, probabilities, labels, grid)
    support = (targets >= 0.5).sum(axis=0)
    tuned: dict[str, float] = {}
    for i, label in enumerate(labels):
        if support[i] < max(1, min_support):
            tuned[label] = default
            continue
        best = max(sweep[label], key=lambda point: (round(point["f1"], 12), -abs(point["threshold"] - default)))
        tuned[label] = best["threshold"] if best["f1"] > 0 else default
    return tuned


def average_precision(targets: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, float | None]:
    """Area under each label's precision-recall curve (None where the label is absent)."""
    from sklearn.metrics import average_precision_score

    _check(targets, probabilities, labels)
    result: dict[str, float | None] = {}
    for i, label in enumerate(labels):
        column = targets[:, i] >= 0.5
        result[label] = float(average_precision_score(column, probabilities[:, i])) if column.any() else None
    return result


def precision_recall_curves(
    targets: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per present label: (recall, precision) arrays of its precision-recall curve."""
    from sklearn.metrics import precision_recall_curve

    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, label in enumerate(labels):
        column = targets[:, i] >= 0.5
        if column.any():
            precision, recall, _ = precision_recall_curve(column, probabilities[:, i])
            curves[label] = (recall, precision)
    return curves


def top1_confusion(targets: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Confusion between categories, top-1: rows with exactly one true label (the others are left
    out and counted), predicted = the argmax."""
    _check(targets, probabilities, labels)
    single = (targets >= 0.5).sum(axis=1) == 1
    true_index = np.argmax(targets[single], axis=1)
    predicted_index = np.argmax(probabilities[single], axis=1)
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, (true_index, predicted_index), 1)
    rows = int(single.sum())
    return {
        "labels": list(labels),
        "matrix": matrix.tolist(),
        "rows": rows,
        "rows_left_out": int(len(targets) - rows),
        "accuracy": float(np.trace(matrix) / rows) if rows else 0.0,
    }
