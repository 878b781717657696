"""Per-class thresholds of the main head tuned for the label the service returns.

Export's default tuning (``training.evaluation.metrics.tune_thresholds``) picks each label's threshold
for that label's own F1, as if every label were decided alone. The service returns one label per
comment through the routing rule (``service.routing``: the top label among those clearing their
thresholds, then the information decision for routed comments), so per-label optima are not the
served optimum: with class-weighted training the rare classes' probabilities run high and their
F1-best thresholds (0.85-0.95) make the top-label rule skip many true ones.

``tune_served_thresholds`` runs coordinate ascent over the main head's thresholds, each on a grid,
maximising the macro-F1 of the served label on validation rows, with the served rule itself
(``service.routing.top_label`` and ``final_label``) deciding each row. Tune on a validation split
only; the test split measures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.bundle import Head
from service.routing import final_label, top_label
from training.evaluation.metrics import DEFAULT_GRID
from training.evaluation.served import ServedRow, class_figures


def served_labels(
    main: Head,
    main_probabilities: np.ndarray,
    information_probabilities: np.ndarray | None,
    *,
    routed_labels: frozenset[str],
    information_threshold: float,
) -> list[str]:
    """The label the service would return for each row (``information_probabilities``: one per row,
    from the information head or bundle; None: no information decision)."""
    labels = []
    for row, probabilities in enumerate(main_probabilities):
        top = top_label(main, probabilities)
        routed = information_probabilities is not None and top in routed_labels
        probability = float(information_probabilities[row]) if routed else None  # type: ignore[index]
        labels.append(final_label(top, probability, information_threshold))
    return labels


def served_macro_f1(gold: Sequence[tuple[str, ...]], labels: Sequence[str], classes: Sequence[str]) -> float:
    rows = [
        ServedRow(str(i), "", "", row_gold, label, 1.0)
        for i, (row_gold, label) in enumerate(zip(gold, labels, strict=True))
    ]
    return float(class_figures(rows, classes)["macro_f1"])


def tune_served_thresholds(
    main: Head,
    main_probabilities: np.ndarray,
    information_probabilities: np.ndarray | None,
    gold: Sequence[tuple[str, ...]],
    *,
    routed_labels: frozenset[str],
    information_threshold: float,
    grid: Sequence[float] = DEFAULT_GRID,
    rounds: int = 4,
) -> tuple[dict[str, float], float]:
    """``(thresholds, validation macro-F1)``: the main head's per-label thresholds, starting from the
    head's own, improved one label at a time until a round changes nothing (at most ``rounds``)."""
    if len(gold) != len(main_probabilities):
        raise ValueError(f"{len(gold)} gold rows for {len(main_probabilities)} probability rows")
    classes = [name for name in main.labels if any(name in row for row in gold)]
    thresholds = {label: main.threshold(label) for label in main.labels}

    def score(candidate: dict[str, float]) -> float:
        head = main.model_copy(update={"thresholds": candidate})
        labels = served_labels(
            head,
            main_probabilities,
            information_probabilities,
            routed_labels=routed_labels,
            information_threshold=information_threshold,
        )
        return served_macro_f1(gold, labels, classes)

    best = score(thresholds)
    for _ in range(rounds):
        changed = False
        for label in main.labels:
            for value in grid:
                if value == thresholds[label]:
                    continue
                candidate = {**thresholds, label: float(value)}
                value_score = score(candidate)
                if value_score > best + 1e-9:
                    best, thresholds, changed = value_score, candidate, True
        if not changed:
            break
    return thresholds, best
