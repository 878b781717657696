"""Precision-recall curves and threshold sweeps as PNG files (matplotlib, Agg backend: no display)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_precision_recall(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    average_precision: Mapping[str, float | None],
    path: Path,
    *,
    title: str,
) -> Path:
    """One curve per label (recall on x, precision on y), AP in the legend."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 6))
    for label, (recall, precision) in curves.items():
        ap = average_precision.get(label)
        axes.plot(recall, precision, label=f"{label} (AP {ap:.2f})" if ap is not None else label, linewidth=1.2)
    axes.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_threshold_sweep(sweep: Mapping[str, list[dict[str, float]]], path: Path, *, title: str) -> Path:
    """F1 (solid), precision and recall (thin) against the threshold, one colour per label."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 6))
    colours = plt.get_cmap("tab20")
    for index, (label, points) in enumerate(sweep.items()):
        thresholds = [point["threshold"] for point in points]
        colour = colours(index % 20)
        axes.plot(thresholds, [point["f1"] for point in points], color=colour, linewidth=1.6, label=label)
        axes.plot(thresholds, [point["precision"] for point in points], color=colour, linewidth=0.6, linestyle="--")
        axes.plot(thresholds, [point["recall"] for point in points], color=colour, linewidth=0.6, linestyle=":")
    axes.set(
        xlabel="threshold", ylabel="F1 (solid), precision (--), recall (:)", title=title, xlim=(0, 1), ylim=(0, 1.02)
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
