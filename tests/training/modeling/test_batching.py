from __future__ import annotations

from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from service.text import Preprocessing
from training.export.onnx_bundle import encode_texts
from training.modeling.batching import BUCKET_BATCHES, collate, encode_dataset, length_bucketed_batches


def test_every_index_once_and_similar_lengths_per_batch() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    batches = length_bucketed_batches(lengths, 8, rng=np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert max(len(batch) for batch in batches) == 8
    # inside a window of 8 * BUCKET_BATCHES rows, batches are sorted by length: small spread
    spreads = [int(lengths[batch].max() - lengths[batch].min()) for batch in batches]
    assert np.mean(spreads) < 3 < lengths.max() - lengths.min()
    again = length_bucketed_batches(lengths, 8, rng=np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert BUCKET_BATCHES > 1


def test_dynamic_padding_matches_the_export_encoding(tiny_encoder_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_encoder_dir))
    texts = ["哈哈哈哈哈哈哈 笑死", "awsl", "这首曲子的作者是谁？"]
    dataset = encode_dataset(
        texts,
        tokenizer,
        targets=[np.eye(3, dtype=np.float32)],
        max_sequence_length=8,
        preprocessing=Preprocessing(),
        with_features=True,
        progress=False,
    )
    inputs, targets = collate(dataset, np.arange(3))
    expected = encode_texts(
        texts,
        tokenizer,
        input_names=["input_ids", "attention_mask", "token_type_ids", "features"],
        max_sequence_length=8,
        preprocessing=Preprocessing(),
    )
    assert set(inputs) == set(expected)
    for name, tensor in expected.items():
        assert np.array_equal(inputs[name].numpy(), tensor.numpy()), name
    assert targets[0].shape == (3, 3)
    short = collate(dataset, np.array([1]))[0]
    assert short["input_ids"].shape[1] < inputs["input_ids"].shape[1]  # padded to its own longest row only
