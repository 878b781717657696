"""The labelling loop: batches -> concurrent requests -> parsed answers -> checkpoint, with a retry queue.

One asyncio queue holds batches; ``concurrency`` workers take from it, so that many requests are in
flight. A batch's outcome:

- every id answered: its records go to the checkpoint (one fsync per batch);
- some ids answered (truncated answer, skipped comments): those are kept, the missing ids go back
  to the queue as a smaller batch;
- nothing usable (unparseable answer, request failed after the client's retries): the batch goes
  back to the queue; after ``max_attempts`` failed sends it is split in halves, and a single
  comment that still fails is recorded as failed with the reason.

Answers for ids the batch does not have are ignored (and counted). Labels are normalised with
``training.taxonomy.normalise_labels``; the raw labels are kept beside them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from training.llm.checkpoint import CheckpointWriter
from training.llm.client import ChatClient, ChatReply, RequestFailed
from training.llm.parsing import AnswerItem, parse_answer
from training.llm.prompt import SYSTEM_PROMPT, answer_json_schema, build_messages
from training.taxonomy import normalise_labels


@dataclass(frozen=True)
class Batch:
    """Comments sent together: ``(id, text)`` pairs and how many sends of exactly these have failed."""

    items: tuple[tuple[str, str], ...]
    failed_sends: int = 0


@dataclass
class LabelReport:
    """Counts of one ``llm-label`` run (this run only; ``already_done`` came from the checkpoint)."""

    texts: int = 0
    already_done: int = 0
    to_label: int = 0
    labelled: int = 0
    failed_items: int = 0
    batches: int = 0  # initial batches
    requests: int = 0  # chat completions that returned (any answer)
    parse_failures: int = 0  # answers with no usable item
    partial_answers: int = 0  # answers missing some ids (their ids re-queued)
    truncated_answers: int = 0
    repaired_answers: int = 0
    missing_ids: int = 0
    unknown_ids: int = 0
    batch_retries: int = 0  # batches re-queued after a failed send
    request_retries: int = 0  # transient HTTP failures retried by the client
    failed_requests: int = 0  # requests that failed after all client retries
    splits: int = 0
    label_distribution: dict[str, int] = field(default_factory=dict)
    subcategory_distribution: dict[str, int] = field(default_factory=dict)
    unknown_label_names: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    labels_per_second: float = 0.0
    parse_failure_rate: float = 0.0  # parse failures / requests
    model: str = ""
    response_format: str = ""
    format_fallbacks: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)  # the failed items: id, reason
    output_records: int = 0  # labelled records returned, earlier runs' included
    output_label_distribution: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"labelled {self.labelled:,} of {self.to_label:,} texts in {self.seconds:.1f} s "
            f"({self.labels_per_second:.2f} labels/s); {self.already_done:,} were already in the checkpoint",
            f"requests {self.requests:,} (batches {self.batches:,}), parse failures {self.parse_failures:,} "
            f"({self.parse_failure_rate:.1%}), partial answers {self.partial_answers:,}, truncated "
            f"{self.truncated_answers:,}, repaired {self.repaired_answers:,}",
            f"retries: {self.batch_retries:,} batch, {self.request_retries:,} HTTP; splits {self.splits:,}; "
            f"failed requests {self.failed_requests:,}; failed items {self.failed_items:,}; "
            f"unknown ids {self.unknown_ids:,}",
            f"model {self.model or '?'}, response_format {self.response_format}"
            + (f" (fallbacks: {'; '.join(self.format_fallbacks)})" if self.format_fallbacks else ""),
            "labels: " + ", ".join(f"{name} {count:,}" for name, count in self.label_distribution.items()),
        ]
        if self.unknown_label_names:
            lines.append("unknown label names: " + ", ".join(f"{k} {v}" for k, v in self.unknown_label_names.items()))
        return "\n".join(lines)


_COMPOUND_SEPARATORS = re.compile(r"[/:|,>]")


def _split_compound(names: tuple[str, ...]) -> list[str]:
    """``information/situated_knowledge`` (a spelling small models use) -> both names."""
    return [part for name in names for part in _COMPOUND_SEPARATORS.split(name) if part.strip()]


def make_record(identifier: str, text: str, item: AnswerItem, model: str) -> dict[str, Any]:
    """A labelled-text record (``training/records.py`` columns + the llm extras) from one answer item."""
    labels, subcategories, unknown = normalise_labels(_split_compound(item.labels), _split_compound(item.subcategories))
    return {
        "id": identifier,
        "text": text,
        "labels": list(labels),
        "subcategories": list(subcategories),
        "source": "llm",
        "raw_labels": list(item.labels),
        "raw_subcategories": list(item.subcategories),
        "unknown_labels": list(unknown),
        "rationale": item.rationale,
        "model": model,
    }


class Labeller:
    """Runs one labelling job; see the module docstring."""

    def __init__(
        self,
        client: ChatClient,
        checkpoint: CheckpointWriter,
        *,
        batch_size: int,
        concurrency: int,
        max_attempts: int,
        on_done: Callable[[int], None] = lambda _: None,
        on_failed: Callable[[dict[str, str]], None] = lambda _: None,
    ) -> None:
        if batch_size < 1 or concurrency < 1 or max_attempts < 1:
            raise ValueError(
                "batch_size, concurrency and max_attempts must be >= 1, "
                f"got {batch_size}, {concurrency}, {max_attempts}"
            )
        self.client = client
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.report = LabelReport()
        self.records: list[dict[str, Any]] = []
        self._labels: Counter[str] = Counter()
        self._subcategories: Counter[str] = Counter()
        self._unknown: Counter[str] = Counter()
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._on_done = on_done
        self._on_failed = on_failed

    async def run(self, todo: Sequence[tuple[str, str]]) -> None:
        for start in range(0, len(todo), self.batch_size):
            self._queue.put_nowait(Batch(tuple(todo[start : start + self.batch_size])))
            self.report.batches += 1
        workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        finished = asyncio.create_task(self._queue.join())
        try:
            # A worker only ends by raising (EndpointError...): stop everything then.
            await asyncio.wait([finished, *workers], return_when=asyncio.FIRST_COMPLETED)
            for worker in workers:
                if worker.done() and worker.exception() is not None:
                    raise worker.exception()  # type: ignore[misc]
        finally:
            for task in (*workers, finished):
                task.cancel()
            await asyncio.gather(*workers, finished, return_exceptions=True)
            self._finish_report()

    async def _worker(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                await self._process(batch)
            finally:
                self._queue.task_done()

    async def _process(self, batch: Batch) -> None:
        texts = [text for _, text in batch.items]
        messages = build_messages(texts)
        try:
            reply = await self.client.complete(messages, schema=answer_json_schema(len(texts)))
        except RequestFailed as error:
            self.report.failed_requests += 1
            self._retry_or_split(batch, f"request failed: {error}")
            return
        self._count_reply(reply)
        local_ids = {str(index): pair for index, pair in enumerate(batch.items, start=1)}
        parsed = parse_answer(
            reply.content,
            truncated=reply.truncated,
            expected_ids=local_ids.keys(),
            prompt_parts=(SYSTEM_PROMPT, messages[1]["content"]),
        )
        self.report.truncated_answers += reply.truncated
        self.report.repaired_answers += parsed.repaired
        records: list[dict[str, Any]] = []
        for item in parsed.items:
            pair = local_ids.pop(item.comment_id, None)
            if pair is None:
                self.report.unknown_ids += item.comment_id != "0"  # "0" is the prompt's example
                continue
            records.append(make_record(pair[0], pair[1], item, reply.model))
        self._save(records)
        if not local_ids:
            return
        missing = Batch(tuple(local_ids.values()), batch.failed_sends)
        if records:
            self.report.partial_answers += 1
            self.report.missing_ids += len(local_ids)
            self._retry_or_split(missing, f"not in the answer ({parsed.problem or 'ids missing'})")
        else:
            self.report.parse_failures += 1
            self._retry_or_split(missing, f"unparseable answer: {parsed.problem}")

    def _count_reply(self, reply: ChatReply) -> None:
        self.report.requests += 1
        self.report.prompt_tokens += reply.prompt_tokens
        self.report.completion_tokens += reply.completion_tokens
        self.report.model = reply.model

    def _save(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        self.checkpoint.append(records)  # fsync'd before the records count as done
        self.records.extend(records)
        for record in records:
            self._labels.update(record["labels"])
            self._subcategories.update(record["subcategories"])
            self._unknown.update(record["unknown_labels"])
        self.report.labelled += len(records)
        self._on_done(len(records))

    def _retry_or_split(self, batch: Batch, reason: str) -> None:
        failed_sends = batch.failed_sends + 1
        if failed_sends < self.max_attempts:
            self.report.batch_retries += 1
            self._queue.put_nowait(Batch(batch.items, failed_sends))
        elif len(batch.items) > 1:
            self.report.splits += 1
            half = len(batch.items) // 2
            self._queue.put_nowait(Batch(batch.items[:half]))
            self._queue.put_nowait(Batch(batch.items[half:]))
        else:
            identifier, _ = batch.items[0]
            failure = {"id": identifier, "reason": reason}
            self.report.failures.append(failure)
            self.report.failed_items += 1
            self._on_failed(failure)

    def _finish_report(self) -> None:
        self.report.label_distribution = dict(self._labels.most_common())
        self.report.subcategory_distribution = dict(self._subcategories.most_common())
        self.report.unknown_label_names = dict(self._unknown.most_common())
        self.report.request_retries = self.client.retries
        self.report.response_format = self.client.response_format
        self.report.format_fallbacks = list(self.client.format_fallbacks)
        requests = self.report.requests
        self.report.parse_failure_rate = self.report.parse_failures / requests if requests else 0.0


def run_labeller(labeller: Labeller, todo: Sequence[tuple[str, str]]) -> LabelReport:
    """Run a labeller to the end (blocking) and time it."""
    started = time.perf_counter()
    try:
        asyncio.run(_run_and_close(labeller, todo))
    finally:
        labeller.report.seconds = time.perf_counter() - started
        seconds = labeller.report.seconds
        labeller.report.labels_per_second = labeller.report.labelled / seconds if seconds else 0.0
    return labeller.report


async def _run_and_close(labeller: Labeller, todo: Sequence[tuple[str, str]]) -> None:
    try:
        await labeller.run(todo)
    finally:
        await labeller.client.aclose()
