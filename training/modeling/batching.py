"""Tokenised datasets and length-bucketed batches with dynamic padding.

Texts are preprocessed and tokenised once, exactly as ``training.export.onnx_bundle.encode_texts``
(and therefore serving) does, but without padding; each batch is padded to its own longest
sequence. Batches are drawn from buckets of similar length so short danmaku are not padded to
the length of the odd long one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from service.text import Preprocessing, preprocess, text_features

# Sort windows of this many batches by length: long enough to group lengths, short enough to keep
# batches from the same window only (the order of windows and of batches stays random).
BUCKET_BATCHES = 50
_TOKENISE_CHUNK = 4096


@dataclass
class EncodedDataset:
    """Token ids (unpadded), optional raw text features, and one target matrix per head."""

    input_ids: list[list[int]]
    targets: list[np.ndarray]
    pad_token_id: int
    token_type_ids: bool
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def subset(self, indices: np.ndarray) -> EncodedDataset:
        return EncodedDataset(
            input_ids=[self.input_ids[i] for i in indices],
            targets=[target[indices] for target in self.targets],
            pad_token_id=self.pad_token_id,
            token_type_ids=self.token_type_ids,
            features=None if self.features is None else self.features[indices],
        )


def encode_dataset(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    targets: Sequence[np.ndarray],
    max_sequence_length: int,
    preprocessing: Preprocessing,
    with_features: bool = False,
    progress: bool = True,
) -> EncodedDataset:
    """Preprocess + tokenise ``texts`` (truncated to ``max_sequence_length``) and attach targets."""
    for target in targets:
        if len(target) != len(texts):
            raise ValueError(f"targets have {len(target)} rows for {len(texts)} texts")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token")
    cleaned = [preprocess(text, preprocessing) for text in texts]
    input_ids: list[list[int]] = []
    for start in tqdm(range(0, len(cleaned), _TOKENISE_CHUNK), desc="tokenise", unit="chunk", disable=not progress):
        chunk = cleaned[start : start + _TOKENISE_CHUNK]
        encoded = tokenizer(chunk, truncation=True, max_length=max_sequence_length, padding=False)
        input_ids.extend(list(ids) for ids in encoded["input_ids"])
    features = np.asarray([text_features(text) for text in cleaned], dtype=np.float32) if with_features else None
    return EncodedDataset(
        input_ids=input_ids,
        targets=[np.asarray(target, dtype=np.float32) for target in targets],
        pad_token_id=int(tokenizer.pad_token_id),
        token_type_ids="token_type_ids" in tokenizer.model_input_names,
        features=features,
    )


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, *, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Index batches of similar length. With ``rng``: random windows, sorted inside, batches shuffled.
    Without: sorted by length overall (prediction, where order is restored afterwards)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    window = batch_size * BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[offset : offset + batch_size] for offset in range(0, len(chunk), batch_size))
    return [batches[index] for index in rng.permutation(len(batches))]


def collate(dataset: EncodedDataset, indices: np.ndarray) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Model inputs (padded to the batch's longest sequence) and targets for ``indices``."""
    rows = [dataset.input_ids[i] for i in indices]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), dataset.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row_index, row in enumerate(rows):
        input_ids[row_index, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[row_index, : len(row)] = 1
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if dataset.token_type_ids:
        inputs["token_type_ids"] = torch.zeros_like(input_ids)
    if dataset.features is not None:
        inputs["features"] = torch.from_numpy(dataset.features[indices])
    targets = [torch.from_numpy(target[indices]) for target in dataset.targets]
    return inputs, targets
