"""Probabilities per head for a list of texts, from an exported bundle or a training checkpoint.

``BundlePredictor`` computes them with serving's own code (``service.model.OnnxModel``): the
bundle's preprocessing, its ``tokenizer.json`` truncated to ``max_sequence_length`` and padded
with its pad id, the text features on the preprocessed text, ONNX Runtime, each head's activation.
``CheckpointPredictor`` runs the PyTorch model saved by a training stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from service.activations import activate
from service.bundle import Head, load_bundle

if TYPE_CHECKING:
    from training.modeling.saved import ClassifierCard


class Predictor(Protocol):
    task: str
    heads: list[Head]
    description: dict[str, Any]

    def probabilities(self, texts: Sequence[str], *, progress: bool = True) -> dict[str, np.ndarray]: ...


class BundlePredictor:
    """A bundle run by the service's own ``service.model.OnnxModel`` (same preprocessing, tokenizer
    truncation, padding, features and activations as serving), in length-sorted batches."""

    def __init__(self, directory: Path | str, *, batch_size: int = 64, providers: Sequence[str] | None = None) -> None:
        from service.model import CPU, OnnxModel

        self.bundle = load_bundle(directory)
        self.model = OnnxModel.load(self.bundle, providers=list(providers or [CPU]))
        metadata = self.bundle.metadata
        self.task: str = metadata.task
        self.heads: list[Head] = list(metadata.heads)
        self.description = {
            "kind": "bundle",
            "path": str(directory),
            "name": metadata.name,
            "version": metadata.version,
            "precision": metadata.onnx.precision,
        }
        self.batch_size = batch_size

    def probabilities(self, texts: Sequence[str], *, progress: bool = True) -> dict[str, np.ndarray]:
        encoded = self.model.encode(texts)
        order = np.argsort([item.length for item in encoded], kind="stable")
        rows: list[dict[str, np.ndarray]] = [{}] * len(texts)
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc=f"onnx {self.model.name}", unit="batch", disable=not progress):
            indices = order[start : start + self.batch_size]
            for index, prediction in zip(indices, self.model.predict([encoded[i] for i in indices]), strict=True):
                rows[index] = prediction
        return {
            head.name: np.asarray([row[head.name] for row in rows], dtype=np.float32).reshape(
                len(texts), len(head.labels)
            )
            for head in self.heads
        }


class CheckpointPredictor:
    """A classifier saved by a training stage (``training.modeling.saved``), run in PyTorch."""

    def __init__(self, directory: Path | str, *, batch_size: int = 64, device: str = "auto") -> None:
        from training.modeling.saved import load_classifier
        from training.modeling.trainer import resolve_device

        self.model, self.tokenizer, self.card = load_classifier(Path(directory))
        self.task: str = self.card.task
        self.heads = list(self.card.heads)
        self.description = {"kind": "checkpoint", "path": str(directory), "base_encoder": self.card.base_encoder}
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.model.to(self.device)

    def probabilities(self, texts: Sequence[str], *, progress: bool = True) -> dict[str, np.ndarray]:
        return model_probabilities(
            self.model,
            self.tokenizer,
            self.card,
            texts,
            batch_size=self.batch_size,
            device=self.device,
            progress=progress,
        )


def model_probabilities(
    model: Any,
    tokenizer: Any,
    card: ClassifierCard,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    device: Any = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Probabilities per head of a PyTorch classifier described by ``card`` (PyTorch, length-sorted batches)."""
    import torch

    from training.modeling.batching import encode_dataset
    from training.modeling.trainer import predict_logits

    dataset = encode_dataset(
        texts,
        tokenizer,
        targets=[np.zeros((len(texts), len(head.labels)), dtype=np.float32) for head in card.heads],
        max_sequence_length=card.max_sequence_length,
        preprocessing=card.preprocessing,
        with_features=card.takes_features,
        progress=False,
    )
    logits = predict_logits(model, dataset, batch_size=batch_size, device=torch.device(device), progress=progress)
    return {head.name: activate(values, head.activation) for head, values in zip(card.heads, logits, strict=True)}


def open_predictor(path: Path | str, *, batch_size: int = 64) -> Predictor:
    """A bundle directory (has bundle.json) or a training checkpoint (has classifier.json)."""
    path = Path(path)
    if (path / "bundle.json").is_file():
        return BundlePredictor(path, batch_size=batch_size)
    if (path / "classifier.json").is_file():
        return CheckpointPredictor(path, batch_size=batch_size)
    raise FileNotFoundError(f"{path}: neither a bundle (bundle.json) nor a trained classifier (classifier.json)")
