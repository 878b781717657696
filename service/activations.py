"""Logits -> probabilities: the activations a bundle's heads name, shared by serving and training.

Training scores its checkpoints and exports with these functions, so an evaluation or a threshold
tuned offline sees exactly the probabilities the service returns.
"""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, in float64, without overflow for large |logits|."""
    result: np.ndarray = np.exp(-np.logaddexp(0.0, -np.asarray(logits, dtype=np.float64)))
    return result


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, in float64 (shifted by the row maximum)."""
    shifted = np.exp(np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result


def activate(logits: np.ndarray, activation: str) -> np.ndarray:
    """Logits -> probabilities, row-wise: ``softmax`` for one-of-N heads, else ``sigmoid``."""
    return softmax(logits) if activation == "softmax" else sigmoid(logits)
