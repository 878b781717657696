"""The dynamic micro-batcher: many callers' items merged into few forward passes.

One ``MicroBatcher`` per model, shared by every request:

- a batch is flushed when ``max_batch_size`` items wait, when the waiting items hold
  ``max_batch_tokens`` tokens, or when the oldest item has waited ``max_wait_s``;
- batches are length-bucketed: the oldest waiting item goes first (nobody starves), and the
  batch is filled with the waiting items closest to it in length, so little of it is padding;
  the token budget counts padded tokens (items x longest item);
- inference runs in a worker thread, off the event loop; while it computes, the next batch is
  formed (a prefetch of one batch, bounded by a semaphore of 1);
- items whose caller went away (cancelled future) are skipped and counted;
- an exception in a batch, or a result count that differs from the item count, reaches every
  caller of that batch and nobody else;
- admission is bounded: ``submit`` raises ``QueueFull`` at once rather than queueing forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from service import tracing

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class QueueFull(Exception):
    """The batcher's queue cannot take the items; retry after ``retry_after_s`` seconds."""

    def __init__(self, name: str, queued: int, capacity: int, retry_after_s: float) -> None:
        super().__init__(f"model {name!r} queue is full ({queued} of {capacity} comments waiting)")
        self.retry_after_s = retry_after_s


class BatcherClosed(Exception):
    """The batcher is stopped (the service is shutting down)."""


class BatchResultMismatch(RuntimeError):
    """The inference function returned a different number of results than it was given items."""


class BatchObserver(Protocol):
    """Where the batcher reports what it does (Prometheus in production, a recorder in tests)."""

    def queue_depth(self, depth: int) -> None: ...

    def batch_started(
        self, *, size: int, padded_tokens: int, real_tokens: int, queue_waits: Sequence[float]
    ) -> None: ...

    def batch_finished(self, *, seconds: float, failed: bool) -> None: ...

    def skipped(self, count: int) -> None: ...


class NullObserver:
    def queue_depth(self, depth: int) -> None:
        pass

    def batch_started(self, *, size: int, padded_tokens: int, real_tokens: int, queue_waits: Sequence[float]) -> None:
        pass

    def batch_finished(self, *, seconds: float, failed: bool) -> None:
        pass

    def skipped(self, count: int) -> None:
        pass


@dataclass(eq=False)
class _Entry(Generic[ItemT, ResultT]):
    item: ItemT
    length: int
    future: asyncio.Future[ResultT]
    enqueued_at: float = field(default_factory=time.monotonic)
    trace_context: object | None = field(default_factory=tracing.current_context)


def select_batch(lengths: Sequence[int], *, max_size: int, max_tokens: int, max_padding: float = 1.0) -> list[int]:
    """Indexes (into the waiting list, oldest first) of the next batch.

    The oldest item always goes; the rest are taken closest-in-length first while the batch stays
    within ``max_size`` items, ``max_tokens`` padded tokens (items x longest) and a padding share of
    at most ``max_padding``; an item that breaks a bound is left for a later batch.
    """
    if not lengths:
        return []
    anchor = lengths[0]
    order = sorted(range(len(lengths)), key=lambda index: (abs(lengths[index] - anchor), index))
    chosen: list[int] = []
    longest = 0
    real = 0
    for index in order:
        if len(chosen) >= max_size:
            break
        candidate_longest = max(longest, lengths[index])
        padded = (len(chosen) + 1) * candidate_longest
        candidate_real = real + lengths[index]
        if chosen and (padded > max_tokens or 1.0 - candidate_real / padded > max_padding):
            continue
        chosen.append(index)
        longest = candidate_longest
        real = candidate_real
    return sorted(chosen)


class MicroBatcher(Generic[ItemT, ResultT]):
    """Batches items from concurrent callers for a synchronous ``infer(items) -> results`` function."""

    def __init__(
        self,
        name: str,
        infer: Callable[[list[ItemT]], Sequence[ResultT]],
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        max_wait_s: float,
        max_queued: int,
        max_padding: float = 1.0,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1 or max_batch_tokens < 1 or max_queued < 1 or max_wait_s < 0:
            raise ValueError("batch size, token budget and queue bound must be >= 1 and max_wait_s >= 0")
        self.name = name
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self.max_queued = max_queued
        self.max_padding = max_padding
        self._observer: BatchObserver = observer or NullObserver()
        self._pending: list[_Entry[ItemT, ResultT]] = []
        self._pending_tokens = 0
        self._wakeup = asyncio.Event()
        # Bounded to 1: at most one formed batch waits while the previous one computes.
        self._prefetch_slot = asyncio.Semaphore(1)
        self._channel: asyncio.Queue[list[_Entry[ItemT, ResultT]]] = asyncio.Queue(maxsize=1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._running: list[_Entry[ItemT, ResultT]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._batch_seconds = 0.0  # moving average, for Retry-After

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._schedule(), name=f"batcher-{self.name}-schedule"),
            asyncio.create_task(self._run(), name=f"batcher-{self.name}-run"),
        ]

    async def stop(self) -> None:
        """Stop the loops; anything still waiting fails with ``BatcherClosed``."""
        self._closed = True
        running = list(self._running)  # the loop's `finally` clears it when cancelled
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        leftovers = [*self._pending, *running]
        while not self._channel.empty():
            leftovers.extend(self._channel.get_nowait())
        self._pending.clear()
        self._pending_tokens = 0
        for entry in leftovers:
            if not entry.future.done():
                entry.future.set_exception(BatcherClosed(f"model {self.name!r} is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- callers -------------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, items: Sequence[ItemT], lengths: Sequence[int]) -> list[asyncio.Future[ResultT]]:
        """Queue ``items`` (with their token counts); raise ``QueueFull`` if they do not fit."""
        if len(items) != len(lengths):
            raise ValueError(f"{len(items)} items but {len(lengths)} lengths")
        if self._closed:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        if len(self._pending) + len(items) > self.max_queued:
            raise QueueFull(self.name, len(self._pending), self.max_queued, self.retry_after_s())
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[ResultT]] = []
        now = time.monotonic()
        for item, length in zip(items, lengths, strict=True):
            future: asyncio.Future[ResultT] = loop.create_future()
            self._pending.append(_Entry(item, max(1, int(length)), future, now))
            self._pending_tokens += max(1, int(length))
            futures.append(future)
        self._observer.queue_depth(len(self._pending))
        self._wakeup.set()
        return futures

    async def run(self, items: Sequence[ItemT], lengths: Sequence[int]) -> list[ResultT]:
        """Submit and wait for every result; on cancellation or failure the rest are cancelled."""
        futures = self.submit(items, lengths)
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for future in futures:
                if future.done():
                    if not future.cancelled():
                        future.exception()  # retrieved: no "exception never retrieved" noise
                else:
                    future.cancel()
            raise

    def retry_after_s(self) -> float:
        batches_ahead = len(self._pending) / self.max_batch_size + 1
        return min(30.0, max(1.0, batches_ahead * max(self._batch_seconds, self.max_wait_s)))

    # --- the two loops -------------------------------------------------------------------------
    def _flush_due(self) -> float | None:
        """0 when a batch should go now, else seconds until the oldest item's deadline (None: idle)."""
        if not self._pending:
            return None
        if len(self._pending) >= self.max_batch_size or self._pending_tokens >= self.max_batch_tokens:
            return 0.0
        return max(0.0, self._pending[0].enqueued_at + self.max_wait_s - time.monotonic())

    async def _wait_for_flush(self) -> None:
        while True:
            due = self._flush_due()
            if due == 0.0:
                return
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=due)

    def _take_batch(self) -> list[_Entry[ItemT, ResultT]]:
        live = [entry for entry in self._pending if not entry.future.done()]
        if len(live) != len(self._pending):
            self._observer.skipped(len(self._pending) - len(live))
        indexes = set(
            select_batch(
                [entry.length for entry in live],
                max_size=self.max_batch_size,
                max_tokens=self.max_batch_tokens,
                max_padding=self.max_padding,
            )
        )
        batch = [entry for index, entry in enumerate(live) if index in indexes]
        self._pending = [entry for index, entry in enumerate(live) if index not in indexes]
        self._pending_tokens = sum(entry.length for entry in self._pending)
        self._observer.queue_depth(len(self._pending))
        return batch

    async def _schedule(self) -> None:
        while True:
            await self._prefetch_slot.acquire()
            await self._wait_for_flush()
            batch = self._take_batch()
            if batch:
                self._channel.put_nowait(batch)
            else:
                self._prefetch_slot.release()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._channel.get()
            self._prefetch_slot.release()
            live = [entry for entry in batch if not entry.future.done()]
            if len(live) != len(batch):
                self._observer.skipped(len(batch) - len(live))
            if not live:
                continue
            started = time.monotonic()
            lengths = [entry.length for entry in live]
            self._observer.batch_started(
                size=len(live),
                padded_tokens=len(live) * max(lengths),
                real_tokens=sum(lengths),
                queue_waits=[started - entry.enqueued_at for entry in live],
            )
            trace = tracing.batch_started(
                self.name,
                [entry.trace_context for entry in live],
                [entry.enqueued_at for entry in live],
                started,
                padded_tokens=len(live) * max(lengths),
            )
            failed = False
            self._running = live
            try:
                results = await loop.run_in_executor(self._executor, self._infer, [entry.item for entry in live])
                if len(results) != len(live):
                    raise BatchResultMismatch(
                        f"model {self.name!r} returned {len(results)} results for a batch of {len(live)}"
                    )
            except Exception as exc:
                failed = True
                logger.error("batch of %d on model %r failed: %r", len(live), self.name, exc)
                for entry in live:
                    if not entry.future.done():
                        entry.future.set_exception(exc)
            else:
                for entry, result in zip(live, results, strict=True):
                    if not entry.future.done():
                        entry.future.set_result(result)
            finally:
                self._running = []
                seconds = time.monotonic() - started
                self._batch_seconds = seconds if self._batch_seconds == 0 else 0.8 * self._batch_seconds + 0.2 * seconds
                self._observer.batch_finished(seconds=seconds, failed=failed)
                trace.finished(failed=failed)
