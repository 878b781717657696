"""Teacher logits for every training row of a distillation run, computed once and kept on disk.

The rows are scored in chunks of ``chunk_rows``; each finished chunk is written atomically to
``<out_dir>/chunks/<n>.npz``, so a killed run (200K texts through a 12-layer teacher is tens of
minutes on a CPU) resumes at the first missing chunk. ``manifest.json`` records what the chunks
belong to (the teachers' weights and the encoded rows); another fingerprint clears them. With
several teachers (an ensemble) the logits are averaged per head.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.modeling.batching import EncodedDataset
from training.modeling.trainer import predict_logits

logger = logging.getLogger(__name__)

CHUNKS_DIR = "chunks"
MANIFEST = "manifest.json"


def dataset_digest(dataset: EncodedDataset) -> str:
    """sha256 of the encoded rows (token ids and features): what the teacher's logits depend on."""
    digest = hashlib.sha256()
    lengths = dataset.lengths()
    digest.update(lengths.tobytes())
    if len(dataset):
        digest.update(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in dataset.input_ids]).tobytes())
    if dataset.features is not None:
        digest.update(np.ascontiguousarray(dataset.features, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _save_chunk(arrays: Sequence[np.ndarray], path: Path) -> None:
    staging = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(staging, *arrays)
    os.replace(staging, path)


def _load_chunk(path: Path) -> list[np.ndarray]:
    with np.load(path) as loaded:
        return [loaded[f"arr_{index}"] for index in range(len(loaded.files))]


def teacher_logits(
    teachers: Sequence[nn.Module],
    dataset: EncodedDataset,
    *,
    out_dir: Path,
    teacher_digest: str,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    chunk_rows: int = 8192,
    progress: bool = True,
) -> list[np.ndarray]:
    """Logits per head of the teachers (averaged) for every row of ``dataset``, in row order.

    ``teacher_digest`` identifies the teachers' weights (e.g. sha256 of their weight files).
    """
    if not teachers:
        raise ValueError("distillation needs at least one teacher")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    fingerprint = hashlib.sha256(f"{teacher_digest}|{dataset_digest(dataset)}|{chunk_rows}".encode()).hexdigest()
    chunks = out_dir / CHUNKS_DIR
    manifest = out_dir / MANIFEST
    recorded = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
    if recorded.get("fingerprint") != fingerprint:
        shutil.rmtree(chunks, ignore_errors=True)
    chunks.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "rows": len(dataset), "chunk_rows": chunk_rows}))

    for model in teachers:
        model.to(device).eval()
    parts: list[list[np.ndarray]] = []
    starts = range(0, len(dataset), chunk_rows)
    for number, start in enumerate(starts):
        path = chunks / f"{number:05d}.npz"
        if path.is_file():
            parts.append(_load_chunk(path))
            continue
        rows = dataset.subset(np.arange(start, min(start + chunk_rows, len(dataset))))
        scored = [
            predict_logits(
                model,
                rows,
                batch_size=batch_size,
                device=device,
                precision=precision,
                progress=progress,
                description=f"teacher {number + 1}/{len(starts)}",
            )
            for model in teachers
        ]
        averaged = [
            np.mean([logits[head] for logits in scored], axis=0).astype(np.float32) for head in range(len(scored[0]))
        ]
        _save_chunk(averaged, path)
        parts.append(averaged)
    if not parts:
        return [np.zeros((0, target.shape[1]), dtype=np.float32) for target in dataset.targets]
    logger.info("teacher logits for %d rows in %s", len(dataset), chunks)
    return [np.concatenate([part[head] for part in parts]) for head in range(len(parts[0]))]
