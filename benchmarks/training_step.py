"""Seconds per optimisation step of the emotion classifier on an encoder, with and without frozen
word embeddings (CPU unless a GPU is present). Prints figures; asserts nothing.

    python benchmarks/training_step.py artifacts/encoders/multilingual-e5-small --batch-size 32 --length 24
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from service.text import Preprocessing
from training.modeling.batching import collate, encode_dataset
from training.modeling.fine_tune import EMOTION_HEADS
from training.modeling.saved import ClassifierCard, build_classifier
from training.modeling.settings import TrainingSettings
from training.modeling.trainer import _optimizer, multi_label_loss, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder", help="hub id or local encoder directory")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=24, help="characters per synthetic comment")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from training.modeling.classifiers import load_encoder

    device = resolve_device("auto")
    tokenizer = AutoTokenizer.from_pretrained(args.encoder)
    texts = [("这个视频真的太好看了哈哈哈前方高能" * 8)[: args.length]] * args.batch_size
    targets = [np.zeros((args.batch_size, len(head.labels)), dtype=np.float32) for head in EMOTION_HEADS]
    dataset = encode_dataset(
        texts, tokenizer, targets=targets, max_sequence_length=128, preprocessing=Preprocessing(), progress=False
    )
    inputs, batch_targets = collate(dataset, np.arange(args.batch_size))
    width = inputs["input_ids"].shape[1]
    print(f"device {device}, threads {torch.get_num_threads()}, batch {args.batch_size} x {width} tokens")
    for freeze in (False, True):
        settings = TrainingSettings(freeze_embeddings=freeze)
        card = ClassifierCard(
            kind="multi_head",
            base_encoder=args.encoder,
            heads=list(EMOTION_HEADS),
            max_sequence_length=128,
            preprocessing=Preprocessing(),
        )
        model = build_classifier(load_encoder(args.encoder), card).to(device).train()
        if freeze:
            model.encoder.get_input_embeddings().requires_grad_(False)  # type: ignore[union-attr,operator]
        optimizer = _optimizer(model, settings)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        timings = []
        for _ in range(args.steps + 1):
            started = time.perf_counter()
            outputs = model(**{k: v.to(device) for k, v in inputs.items()})
            loss = multi_label_loss(outputs, [t.to(device) for t in batch_targets], [None, None])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - started)
        steady = timings[1:]  # the first step allocates optimizer state
        print(
            f"freeze_embeddings={freeze!s:<5} trainable {trainable / 1e6:6.1f}M  "
            f"step {np.median(steady):.2f} s (median of {len(steady)}, min {min(steady):.2f})"
        )


if __name__ == "__main__":
    main()
