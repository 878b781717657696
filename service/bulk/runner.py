"""Classify one shard of the input with the service's router and write its parts; resume what a killed run left.

The router is the online one (``service.runtime.Runtime``: the same bundles, micro-batchers, routing rule and
thresholds), fed with calls of ``comments_per_call`` comments, ``calls_in_flight`` at a time, so that one call's
information-model batch overlaps the next call's emotion batch and the batcher has comments to bucket by length.
Reading the next chunk (a thread) overlaps the classification of the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.bulk.inputs import Chunk, ChunkReader, InputFile, OnBadRows
from service.bulk.output import (
    OUTPUT_SCHEMA,
    InputRecord,
    PartRecord,
    RunRecord,
    ShardManifest,
    claim_run,
    count_rejects,
    existing_parts,
    part_path,
    rejects_path,
    remove_stale_temporaries,
    write_manifest,
    write_part,
    write_rejects,
)
from service.bulk.shards import check_shard, shard_of
from service.routing import Decision, Router
from service.settings import Mode, Settings

logger = logging.getLogger(__name__)

CALLS_IN_FLIGHT = 2
CALL_SIZE_IN_BATCHES = 4  # comments per router call = 4 x the forward-pass batch size


class IncompleteOutput(RuntimeError):
    """After a run, a part of this shard is missing or has the wrong number of rows (should never happen)."""


@dataclass(frozen=True)
class BulkOptions:
    shard_index: int = 0
    num_shards: int = 1
    text_column: str = "text"
    id_column: str | None = None
    chunk_rows: int = 10_000
    mode: Mode | None = None
    information_threshold: float | None = None
    comments_per_call: int = 128
    calls_in_flight: int = CALLS_IN_FLIGHT
    on_bad_rows: OnBadRows = "fail"


def bulk_settings(settings: Settings) -> tuple[Settings, int]:
    """The settings with a queue deep enough for the calls in flight (never a 429 offline), and the call size."""
    comments_per_call = CALL_SIZE_IN_BATCHES * settings.max_batch_size
    needed = comments_per_call * CALLS_IN_FLIGHT
    if settings.max_queue_size < needed:
        settings = settings.model_copy(update={"max_queue_size": needed})
    return settings, comments_per_call


async def classify_texts(
    router: Router,
    texts: Sequence[str],
    *,
    mode: Mode,
    information_threshold: float,
    comments_per_call: int,
    calls_in_flight: int,
    on_progress: Callable[[int], None] | None = None,
    return_scores: bool = False,
) -> list[Decision]:
    """Decisions for ``texts`` in order, through the router in calls of ``comments_per_call``
    (with every head's probabilities when ``return_scores``)."""
    slots = asyncio.Semaphore(calls_in_flight)

    async def call(start: int) -> list[Decision]:
        async with slots:
            batch = texts[start : start + comments_per_call]
            routed = await router.classify(
                batch, mode=mode, information_threshold=information_threshold, return_scores=return_scores
            )
        if len(routed.decisions) != len(batch):
            raise RuntimeError(f"the router returned {len(routed.decisions)} decisions for {len(batch)} comments")
        if on_progress is not None:
            on_progress(len(batch))
        return routed.decisions

    parts = await asyncio.gather(*(call(start) for start in range(0, len(texts), comments_per_call)))
    return [decision for part in parts for decision in part]


def results_table(chunk: Chunk, decisions: dict[int, Decision], *, source: str, versions: tuple[str, str]) -> pa.Table:
    """One output row per input row of ``chunk``; rows without a decision (empty text) get a null label."""
    columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_SCHEMA.names}
    for offset, (comment_id, text) in enumerate(zip(chunk.ids, chunk.texts, strict=True)):
        decision = decisions.get(offset)
        columns["id"].append(comment_id)
        columns["text"].append(text)
        columns["label"].append(None if decision is None else decision.label)
        columns["subcategory"].append(None if decision is None else decision.subcategory)
        columns["labels"].append([] if decision is None else decision.labels)
        columns["route"].append([] if decision is None else decision.route)
        columns["information_probability"].append(None if decision is None else decision.information_probability)
        columns["emotion_version"].append(versions[0])
        columns["information_version"].append(versions[1])
        columns["source"].append(source)
        columns["row"].append(chunk.start_row + offset)
    return pa.table(columns, schema=OUTPUT_SCHEMA)


async def _prefetched(iterator: Iterator[Chunk]) -> AsyncIterator[Chunk]:
    """The chunks of ``iterator``, the next one read in a thread while the caller works on the current one."""
    pending = asyncio.ensure_future(asyncio.to_thread(next, iterator, None))
    try:
        while True:
            chunk = await pending
            if chunk is None:
                return
            pending = asyncio.ensure_future(asyncio.to_thread(next, iterator, None))
            yield chunk
    finally:
        if not pending.done():
            with contextlib.suppress(Exception):
                await pending


def planned_rows(inputs: Sequence[InputFile], options: BulkOptions) -> int | None:
    """Rows of this shard when every input is Parquet (from the footers), else None (unknown before reading)."""
    if any(file.format != "parquet" for file in inputs):
        return None
    total = 0
    for file in inputs:
        rows = pq.read_metadata(file.path).num_rows
        for index in range((rows + options.chunk_rows - 1) // options.chunk_rows):
            if shard_of(file.key, index, options.num_shards) == options.shard_index:
                total += min(options.chunk_rows, rows - index * options.chunk_rows)
    return total


def _check_parts(
    file: InputFile, total_rows: int, parts: dict[int, PartRecord], options: BulkOptions, owned: Callable[[int], bool]
) -> None:
    """Every chunk of the file this shard owns has its part, with the rows it should have."""
    chunks = (total_rows + options.chunk_rows - 1) // options.chunk_rows
    for index in filter(owned, range(chunks)):
        expected = min(options.chunk_rows, total_rows - index * options.chunk_rows)
        part = parts.get(index)
        if part is None:
            raise IncompleteOutput(f"{file.key}: chunk {index} has no part after the run")
        if part.rows != expected or part.start_row != index * options.chunk_rows:
            raise IncompleteOutput(
                f"{part.path}: {part.rows} rows from row {part.start_row}, expected {expected} from "
                f"{index * options.chunk_rows}; was {file.key} changed during the run?"
            )
    extra = sorted(index for index in parts if index >= chunks)
    if extra:
        raise IncompleteOutput(f"{file.key} has {total_rows} rows but the output has parts for chunks {extra}")


def _owner(key: str, options: BulkOptions) -> Callable[[int], bool]:
    def owned(index: int) -> bool:
        return shard_of(key, index, options.num_shards) == options.shard_index

    return owned


def _resume_state(output_dir: Path, key: str, owned: Callable[[int], bool]) -> dict[int, PartRecord]:
    """Delete what a killed run of this shard left half-written; the parts it finished (chunk -> part)."""
    removed = remove_stale_temporaries(output_dir, key, owned)
    if removed:
        logger.info("%s: removed %d temporary file(s) of an interrupted run", key, removed)
    return {index: part for index, part in existing_parts(output_dir, key).items() if owned(index)}


def _finished_parts(
    output_dir: Path, file: InputFile, total_rows: int, options: BulkOptions, owned: Callable[[int], bool]
) -> list[PartRecord]:
    parts = {index: part for index, part in existing_parts(output_dir, file.key).items() if owned(index)}
    _check_parts(file, total_rows, parts, options, owned)
    return sorted(parts.values(), key=lambda part: part.chunk)


async def run_shard(
    router: Router,
    inputs: Sequence[InputFile],
    output_dir: Path,
    options: BulkOptions,
    *,
    progress: Any = None,
) -> ShardManifest:
    """Classify the chunks of shard ``options.shard_index`` not already in ``output_dir``; the shard's manifest.

    ``progress``: a tqdm bar (or anything with ``update(n)``), advanced by classified or resumed rows.
    """
    started = time.monotonic()
    check_shard(options.shard_index, options.num_shards)
    mode: Mode = options.mode or router.policy.default_mode
    threshold = router.policy.threshold(mode, options.information_threshold)
    run = RunRecord(
        inputs=[InputRecord(key=file.key, format=file.format, size_bytes=file.size_bytes) for file in inputs],
        text_column=options.text_column,
        id_column=options.id_column,
        chunk_rows=options.chunk_rows,
        num_shards=options.num_shards,
        mode=mode,
        information_threshold=threshold,
        routed_labels=sorted(router.policy.routed_labels),
        models=router.versions,
        on_bad_rows=options.on_bad_rows,
    )
    await asyncio.to_thread(claim_run, output_dir, run)
    # information_version: the bundle whose head decides 'information' (the emotion bundle itself when joint)
    versions = (router.emotion.metadata.version, router.deciding_information.metadata.version)
    advance: Callable[[int], None] = progress.update if progress is not None else (lambda _rows: None)

    all_parts: list[PartRecord] = []
    resumed = written = 0
    for file in inputs:
        owned = _owner(file.key, options)
        done = await asyncio.to_thread(_resume_state, output_dir, file.key, owned)
        resumed += len(done)
        advance(sum(part.rows for part in done.values()))
        reader = ChunkReader(
            file,
            chunk_rows=options.chunk_rows,
            text_column=options.text_column,
            id_column=options.id_column,
            on_bad_rows=options.on_bad_rows,
        )

        def wanted(index: int, owned: Callable[[int], bool] = owned, done: frozenset[int] = frozenset(done)) -> bool:
            return owned(index) and index not in done

        async for chunk in _prefetched(reader.chunks(wanted)):
            # Null or blank texts are not classified (the API refuses them too): their rows get a null label.
            texts = {offset: text for offset, text in enumerate(chunk.texts) if text is not None and text.strip()}
            decisions = await classify_texts(
                router,
                list(texts.values()),
                mode=mode,
                information_threshold=threshold,
                comments_per_call=options.comments_per_call,
                calls_in_flight=options.calls_in_flight,
                on_progress=advance,
            )
            advance(chunk.rows - len(texts))
            table = results_table(chunk, dict(zip(texts, decisions, strict=True)), source=file.key, versions=versions)
            path = part_path(output_dir, file.key, chunk.index)
            if chunk.rejects:  # before the part: a finished part always has its rejects on disk
                rejects = rejects_path(output_dir, file.key, chunk.index)
                await asyncio.to_thread(write_rejects, rejects, file.key, chunk.rejects)
            await asyncio.to_thread(
                write_part, path, table, source=file.key, chunk_index=chunk.index, start_row=chunk.start_row
            )
            written += 1
        assert reader.total_rows is not None  # set once chunks() is exhausted
        parts = await asyncio.to_thread(_finished_parts, output_dir, file, reader.total_rows, options, owned)
        all_parts.extend(parts)

    rows, empty, labels = await asyncio.to_thread(_count, output_dir, all_parts)
    rejected = await asyncio.to_thread(count_rejects, output_dir, all_parts)
    manifest = ShardManifest(
        shard_index=options.shard_index,
        num_shards=options.num_shards,
        run=run,
        rows=rows,
        empty_texts=empty - rejected,
        rejected_rows=rejected,
        label_counts=labels,
        parts=all_parts,
        resumed_parts=resumed,
        written_parts=written,
        elapsed_s=round(time.monotonic() - started, 3),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    await asyncio.to_thread(write_manifest, output_dir, manifest)
    return manifest


def _count(output_dir: Path, parts: Sequence[PartRecord]) -> tuple[int, int, dict[str, int]]:
    """Rows, empty-text rows and final labels of the parts, read back from disk (the output is the truth)."""
    rows = empty = 0
    labels: Counter[str] = Counter()
    for part in parts:
        column = pq.read_table(output_dir / part.path, columns=["label"]).column("label")
        rows += len(column)
        empty += column.null_count
        for entry in pc.value_counts(column.drop_null()).to_pylist():
            labels[entry["values"]] += entry["counts"]
    return rows, empty, dict(sorted(labels.items()))
