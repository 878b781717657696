"""Stage 2, llm-label: unique texts -> LLM pseudo-labels (the labelled-text table, source "llm").

The work is in ``training/llm/``: ``prompt`` (the reference prompt and answer schema), ``client``
(OpenAI-compatible endpoint, retries, structured-output fallback), ``parsing`` (cleaning and
tolerant JSON), ``checkpoint`` (append-only fsync'd JSONL), ``labeller`` (the concurrent loop and
its retry queue). This function wires them: it skips what the checkpoint already holds, labels
the rest, and returns every requested text's record (earlier runs' included) in input order.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from training.llm.checkpoint import CheckpointWriter, load_checkpoint
from training.llm.client import ChatClient, ClientSettings
from training.llm.labeller import Labeller, LabelReport, run_labeller

log = logging.getLogger(__name__)


@dataclass
class LabelRun:
    records: list[dict[str, Any]]  # labelled-text records for the requested ids, input order
    report: LabelReport


def llm_label(
    texts: Sequence[tuple[str, str]],
    *,
    client: ClientSettings,
    checkpoint: Path,
    failures_out: Path | None = None,
    batch_size: int = 50,
    concurrency: int = 4,
    max_attempts: int = 2,
    progress: bool = True,
    seed: int | None = None,
) -> LabelRun:
    """Label ``(id, text)`` pairs with an LLM behind an OpenAI-compatible endpoint.

    ``checkpoint``: JSONL of finished labels; ids in it are skipped, so calling again after a crash
    resumes. ``failures_out``: JSONL of items that failed every retry and split (they are retried by
    the next run). ``max_attempts``: failed sends of a batch before it is split. ``seed`` seeds the
    retry jitter (tests).
    """
    done = load_checkpoint(checkpoint)
    wanted: dict[str, str] = {}
    for identifier, text in texts:
        wanted.setdefault(identifier, text)
    todo = [(identifier, text) for identifier, text in wanted.items() if identifier not in done]
    chat = ChatClient(client, rng=random.Random(seed) if seed is not None else None)
    failures_handle = None
    if failures_out is not None:
        failures_out.parent.mkdir(parents=True, exist_ok=True)
        failures_handle = failures_out.open("a", encoding="utf-8")
    try:
        with (
            CheckpointWriter(checkpoint) as writer,
            tqdm(total=len(todo), unit=" texts", desc="llm-label", disable=not progress) as bar,
        ):

            def record_done(count: int) -> None:
                bar.update(count)

            def record_failure(failure: dict[str, str]) -> None:
                bar.update(1)
                if failures_handle is not None:
                    failures_handle.write(json.dumps(failure, ensure_ascii=False) + "\n")
                    failures_handle.flush()

            labeller = Labeller(
                chat,
                writer,
                batch_size=batch_size,
                concurrency=concurrency,
                max_attempts=max_attempts,
                on_done=record_done,
                on_failed=record_failure,
            )
            labeller.report.texts = len(wanted)
            labeller.report.already_done = len(wanted) - len(todo)
            labeller.report.to_label = len(todo)
            log.info("%d texts: %d already labelled, %d to label", len(wanted), len(wanted) - len(todo), len(todo))
            report = run_labeller(labeller, todo)
    finally:
        if failures_handle is not None:
            failures_handle.close()
    for record in labeller.records:
        done.setdefault(record["id"], record)
    records = [done[identifier] for identifier in wanted if identifier in done]
    report.output_records = len(records)
    labels = Counter(label for record in records for label in record["labels"])
    report.output_label_distribution = dict(labels.most_common())
    return LabelRun(records=records, report=report)
