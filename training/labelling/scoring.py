"""The probabilities selection works on, from the service's own serving path.

Comments go through ``training.evaluation.served.served_decisions`` (the service's ``Runtime``:
bundles, micro-batchers, router, thresholds, via the bulk path's ``classify_texts``), exactly as
``POST /classify`` and ``danmaku-serve classify-file`` answer them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service.routing import MAIN_HEAD
from service.settings import Mode, Settings
from training.labelling.selection import ModelScores


@dataclass(frozen=True)
class ServedSet:
    """One model set's answers: the scores selection uses, plus what the tasks show."""

    scores: ModelScores
    subcategories: tuple[str | None, ...]
    labels: tuple[tuple[str, ...], ...]  # every main label over its threshold (``Decision.labels``)
    versions: dict[str, str]  # bundle name -> version


def served_set(
    settings: Settings, texts: Sequence[str], *, mode: Mode, on_progress: Callable[[int], None] | None = None
) -> ServedSet:
    """Classify ``texts`` with the bundles of ``settings``; their probabilities and decisions."""
    from training.evaluation.served import served_decisions

    answers = asyncio.run(served_decisions(settings, texts, mode, on_progress=on_progress))
    main = np.zeros((len(texts), len(answers.main_labels)))
    information = np.full(len(texts), np.nan)
    for row, decision in enumerate(answers.decisions):
        probabilities = (decision.scores or {})[answers.emotion][MAIN_HEAD]
        main[row] = [probabilities[label] for label in answers.main_labels]
        if decision.information_probability is not None:
            information[row] = decision.information_probability
    scores = ModelScores(
        main=main,
        labels=answers.main_labels,
        served=tuple(decision.label for decision in answers.decisions),
        information=information,
        information_threshold=answers.information_threshold,
    )
    return ServedSet(
        scores=scores,
        subcategories=tuple(decision.subcategory for decision in answers.decisions),
        labels=tuple(tuple(decision.labels) for decision in answers.decisions),
        versions=answers.versions,
    )
