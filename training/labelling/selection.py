"""Which comments to label next: the ones the served models are least sure of or disagree on.

Pure numpy over the probabilities the service serves (``training.labelling.scoring``). Every score
is an *uncertainty* in [0, 1], higher = less sure:

- ``margin``: 1 - (top1 - top2) of the emotion bundle's main-head probabilities (sigmoid heads:
  two labels both near 0.9, or both near 0.1, are the same doubt);
- ``entropy``: entropy of the main-head probabilities rescaled to sum to 1, divided by log(labels);
- ``threshold``: for comments the router sent to the information model, how close the information
  probability is to the routing threshold, 1 - |p - t| / max(t, 1 - t); 0 for comments not routed
  (the information decision was not taken on them);
- ``disagreement``: between two model sets (e.g. teacher bundles and student bundles), half for a
  different served label plus half the total-variation distance (L1 / 2) of the rescaled main
  probabilities;
- ``mixed`` (the default): the least sure of a comment's decisions, max(mean(margin, entropy),
  threshold), averaged with ``disagreement`` when a second model set is given.

``select`` ranks the comments by the strategy's score (ties broken by a seeded shuffle), keeps the
``pool_factor`` x ``count`` most uncertain, and picks ``count`` of them by greedy max-min
character-bigram Jaccard distance, starting from the most uncertain one, so that near-duplicate
comments (the same meme typed a hundred ways) are not all picked. Exact duplicates should be
collapsed before scoring (``first_of_each``, on the bundle's normalised text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

Strategy = Literal["mixed", "margin", "entropy", "threshold", "disagreement"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
DEFAULT_STRATEGY: Strategy = "mixed"
DEFAULT_POOL_FACTOR = 5


@dataclass(frozen=True)
class ModelScores:
    """What one model set served on ``n`` comments."""

    main: np.ndarray  # (n, labels) main-head probabilities of the emotion bundle
    labels: tuple[str, ...]  # the main head's label of each column
    served: tuple[str, ...]  # the served label of each comment
    information: np.ndarray  # (n,) information probability; NaN where the comment was not routed
    information_threshold: float

    def __post_init__(self) -> None:
        rows = self.main.shape[0]
        if self.main.ndim != 2 or self.main.shape[1] != len(self.labels):
            raise ValueError(f"main probabilities of shape {self.main.shape} for {len(self.labels)} labels")
        if len(self.served) != rows or self.information.shape != (rows,):
            raise ValueError(
                f"{rows} rows of probabilities, {len(self.served)} served labels, "
                f"{self.information.shape[0]} information probabilities"
            )


def _distribution(main: np.ndarray) -> np.ndarray:
    """Each row rescaled to sum to 1 (a row of zeros becomes uniform)."""
    main = np.clip(np.asarray(main, dtype=np.float64), 0.0, None)
    totals = main.sum(axis=1, keepdims=True)
    uniform = np.full_like(main, 1.0 / main.shape[1])
    return np.where(totals > 0, main / np.where(totals > 0, totals, 1.0), uniform)


def margin_uncertainty(main: np.ndarray) -> np.ndarray:
    """1 - (top1 - top2) of each row of main-head probabilities."""
    main = np.asarray(main, dtype=np.float64)
    if main.shape[1] < 2:
        return np.zeros(main.shape[0])
    top = np.sort(main, axis=1)[:, -2:]
    return np.asarray(np.clip(1.0 - (top[:, 1] - top[:, 0]), 0.0, 1.0))


def entropy_uncertainty(main: np.ndarray) -> np.ndarray:
    """Entropy of each row rescaled to sum to 1, over log(labels): 1 = uniform, 0 = one label."""
    distribution = _distribution(main)
    if distribution.shape[1] < 2:
        return np.zeros(distribution.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(distribution > 0, distribution * np.log(distribution), 0.0)
    return np.asarray(np.clip(-terms.sum(axis=1) / np.log(distribution.shape[1]), 0.0, 1.0))


def threshold_uncertainty(information: np.ndarray, threshold: float) -> np.ndarray:
    """1 at the routing threshold, 0 at the far end of [0, 1]; 0 for comments not routed (NaN)."""
    information = np.asarray(information, dtype=np.float64)
    reach = max(threshold, 1.0 - threshold)
    closeness = 1.0 - np.abs(information - threshold) / reach
    return np.asarray(np.where(np.isnan(information), 0.0, np.clip(closeness, 0.0, 1.0)))


def disagreement(first: ModelScores, second: ModelScores) -> np.ndarray:
    """Half for a different served label, plus half the total-variation distance of the main probabilities."""
    if first.labels != second.labels:
        raise ValueError(f"the two model sets have different main labels: {first.labels} vs {second.labels}")
    if first.main.shape != second.main.shape:
        raise ValueError(f"the two model sets scored {first.main.shape[0]} and {second.main.shape[0]} comments")
    different = np.array([a != b for a, b in zip(first.served, second.served, strict=True)], dtype=np.float64)
    variation = 0.5 * np.abs(_distribution(first.main) - _distribution(second.main)).sum(axis=1)
    return np.asarray(0.5 * different + 0.5 * np.clip(variation, 0.0, 1.0))


def uncertainty(scores: ModelScores, strategy: Strategy, second: ModelScores | None = None) -> np.ndarray:
    """The strategy's score of every comment (module docstring); ``second`` is needed by ``disagreement``."""
    if strategy == "disagreement" and second is None:
        raise ValueError("strategy 'disagreement' needs a second model set to compare with")
    if strategy == "margin":
        return margin_uncertainty(scores.main)
    if strategy == "entropy":
        return entropy_uncertainty(scores.main)
    if strategy == "threshold":
        return threshold_uncertainty(scores.information, scores.information_threshold)
    if strategy == "disagreement":
        assert second is not None
        return disagreement(scores, second)
    if strategy != "mixed":
        raise ValueError(f"unknown strategy {strategy!r}; use one of {list(STRATEGIES)}")
    main = 0.5 * (margin_uncertainty(scores.main) + entropy_uncertainty(scores.main))
    mixed = np.maximum(main, threshold_uncertainty(scores.information, scores.information_threshold))
    if second is not None:
        mixed = 0.5 * (mixed + disagreement(scores, second))
    return np.asarray(mixed)


def first_of_each(keys: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """``(index of the first row of each distinct key, in order; how many rows share that key)``."""
    first: dict[Hashable, int] = {}
    counts: Counter[Hashable] = Counter()
    for index, key in enumerate(keys):
        first.setdefault(key, index)
        counts[key] += 1
    return list(first.values()), [counts[key] for key in first]


def bigrams(text: str) -> frozenset[str]:
    """Character bigrams of ``text`` (the text itself when shorter than two characters)."""
    return frozenset(text[index : index + 2] for index in range(len(text) - 1)) or frozenset([text])


def jaccard_distance(first: frozenset[str], second: frozenset[str]) -> float:
    """1 - |intersection| / |union| (0 for two empty sets)."""
    union = len(first | second)
    return 1.0 - len(first & second) / union if union else 0.0


def ranked(scores: np.ndarray, *, seed: int) -> np.ndarray:
    """Indices from the most to the least uncertain; equal scores in a seeded random order."""
    tie_break = np.random.default_rng(seed).permutation(len(scores))
    return np.lexsort((tie_break, -np.asarray(scores, dtype=np.float64)))


def diverse_subset(texts: Sequence[str], order: Sequence[int], count: int) -> list[int]:
    """``count`` of the indices in ``order`` (most uncertain first): the first one, then each time the
    candidate farthest (bigram Jaccard) from everything picked so far; ties go to the earlier one."""
    candidates = list(order)
    if count >= len(candidates):
        return candidates
    grams = [bigrams(texts[index]) for index in candidates]
    nearest = np.full(len(candidates), np.inf)  # distance of each candidate to the closest pick
    taken = np.zeros(len(candidates), dtype=bool)
    picked: list[int] = []
    position = 0
    for _ in range(count):
        taken[position] = True
        picked.append(candidates[position])
        for other in np.flatnonzero(~taken):
            nearest[other] = min(nearest[other], jaccard_distance(grams[position], grams[other]))
        position = int(np.argmax(np.where(taken, -np.inf, nearest)))  # argmax: first of equal maxima
    return picked


def select(
    texts: Sequence[str],
    scores: np.ndarray,
    *,
    count: int,
    seed: int,
    pool_factor: int = DEFAULT_POOL_FACTOR,
) -> list[int]:
    """Indices of the ``count`` comments to label: diverse among the ``pool_factor * count`` most uncertain."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if pool_factor < 1:
        raise ValueError(f"pool_factor must be at least 1, got {pool_factor}")
    if len(texts) != len(scores):
        raise ValueError(f"{len(texts)} texts but {len(scores)} scores")
    pool = ranked(scores, seed=seed)[: count * pool_factor]
    return diverse_subset(texts, [int(index) for index in pool], count)


def score_summary(values: np.ndarray) -> dict[str, float]:
    """Min, median and max of some scores (empty: {})."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return {}
    return {
        "min": round(float(values.min()), 4),
        "median": round(float(np.median(values)), 4),
        "max": round(float(values.max()), 4),
    }


def selection_report(
    served: Sequence[str], scores: np.ndarray, *, considered: int, strategy: Strategy
) -> dict[str, Any]:
    """Counts per served label and the score range of the picked comments (overall and per label)."""
    scores = np.asarray(scores, dtype=np.float64)
    per_label: dict[str, dict[str, Any]] = {}
    for label in sorted(set(served)):
        mask = np.array([name == label for name in served])
        per_label[label] = {"count": int(mask.sum()), "uncertainty": score_summary(scores[mask])}
    return {
        "strategy": strategy,
        "considered": considered,
        "selected": len(served),
        "uncertainty": score_summary(scores),
        "per_served_label": per_label,
    }
