"""MicroBatcher with pure fakes: the inference function is a plain function gated by events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from service.batcher import BatcherClosed, BatchResultMismatch, MicroBatcher, QueueFull, select_batch

# Guards against a hang, never a speed claim: every wait here ends as soon as its condition holds.
GUARD_S = 5.0


class Recorder:
    """A BatchObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.finished: list[bool] = []
        self.skipped_count = 0
        self.depths: list[int] = []

    def queue_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def batch_started(self, *, size: int, padded_tokens: int, real_tokens: int, queue_waits: Sequence[float]) -> None:
        self.batches.append({"size": size, "padded": padded_tokens, "real": real_tokens, "waits": list(queue_waits)})

    def batch_finished(self, *, seconds: float, failed: bool) -> None:
        self.finished.append(failed)

    def skipped(self, count: int) -> None:
        self.skipped_count += count


class FakeModel:
    """Echoes each item upper-cased; records every batch; can be held shut by ``gate``."""

    def __init__(self, fail_on: str | None = None, drop_one: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.threads: set[int] = set()
        self.fail_on = fail_on
        self.drop_one = drop_one

    def __call__(self, items: list[str]) -> list[str]:
        self.threads.add(threading.get_ident())
        self.batches.append(list(items))
        self.entered.set()
        if not self.gate.wait(GUARD_S):
            raise TimeoutError("gate never opened")
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"cannot classify {self.fail_on!r}")
        results = [item.upper() for item in items]
        return results[:-1] if self.drop_one else results


@asynccontextmanager
async def batcher(
    model: Callable[[list[str]], Sequence[str]], **options: Any
) -> AsyncIterator[tuple[MicroBatcher[str, str], Recorder]]:
    recorder = Recorder()
    settings: dict[str, Any] = {"max_batch_size": 8, "max_batch_tokens": 10_000, "max_wait_s": 0.01, "max_queued": 64}
    settings.update(options)
    instance: MicroBatcher[str, str] = MicroBatcher("fake", model, observer=recorder, **settings)
    instance.start()
    try:
        yield instance, recorder
    finally:
        await instance.stop()


async def eventually(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - polling state owned by others
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), GUARD_S)


def lengths_of(items: Sequence[str]) -> list[int]:
    return [len(item) for item in items]


async def test_full_batch_flushes_without_waiting_for_the_timeout() -> None:
    model = FakeModel()
    async with batcher(model, max_batch_size=4, max_wait_s=60.0) as (instance, recorder):
        items = ["a", "b", "c", "d"]
        results = await asyncio.wait_for(instance.run(items, lengths_of(items)), GUARD_S)
    assert results == ["A", "B", "C", "D"]
    assert model.batches == [items]
    assert recorder.batches[0]["size"] == 4


async def test_partial_batch_flushes_after_max_wait() -> None:
    model = FakeModel()
    async with batcher(model, max_batch_size=100, max_wait_s=0.05) as (instance, recorder):
        first = asyncio.create_task(instance.run(["x"], [1]))
        second = asyncio.create_task(instance.run(["y", "z"], [1, 1]))
        assert await asyncio.wait_for(first, GUARD_S) == ["X"]
        assert await second == ["Y", "Z"]
    assert model.batches == [["x", "y", "z"]]  # one batch, flushed by the timer, from two callers
    assert all(wait >= 0.04 for wait in recorder.batches[0]["waits"])


async def test_token_budget_limits_padded_tokens_per_batch() -> None:
    model = FakeModel()
    async with batcher(model, max_batch_size=100, max_batch_tokens=10, max_wait_s=0.05) as (instance, recorder):
        items = ["aaaa", "bbbb", "cccc"]  # 4 tokens each: two fit in 10 padded tokens, three do not
        results = await asyncio.wait_for(instance.run(items, lengths_of(items)), GUARD_S)
    assert results == ["AAAA", "BBBB", "CCCC"]
    assert model.batches == [["aaaa", "bbbb"], ["cccc"]]
    assert all(batch["padded"] <= 10 for batch in recorder.batches)


async def test_batches_are_length_bucketed() -> None:
    model = FakeModel()
    async with batcher(model, max_batch_size=3, max_wait_s=60.0, max_padding=0.5) as (instance, recorder):
        items = ["ab", "x" * 30, "abc", "y" * 31, "cd", "z" * 29]
        results = await asyncio.wait_for(instance.run(items, lengths_of(items)), GUARD_S)
    assert results == [item.upper() for item in items]
    assert [sorted(lengths_of(batch)) for batch in model.batches] == [[2, 2, 3], [29, 30, 31]]
    assert recorder.batches[0]["padded"] == 9  # 3 x 3, not 3 x 31


def test_select_batch_keeps_the_oldest_and_takes_the_closest_lengths() -> None:
    assert select_batch([10, 2, 11, 30, 9], max_size=3, max_tokens=1000) == [0, 2, 4]
    # The oldest goes even when it alone exceeds the budget.
    assert select_batch([50, 1, 1], max_size=8, max_tokens=10) == [0]
    # A long item that would break the budget is skipped, a shorter one further away still fits.
    assert select_batch([4, 6, 1], max_size=8, max_tokens=11) == [0, 2]
    assert select_batch([], max_size=8, max_tokens=10) == []
    # Padding cap: 4, 4 and 5 pad 13% (13 of 15 tokens real); adding 8 would pad 34%, above 25%.
    assert select_batch([4, 5, 8, 4], max_size=8, max_tokens=1000, max_padding=0.25) == [0, 1, 3]
    assert select_batch([4, 5, 8, 4], max_size=8, max_tokens=1000) == [0, 1, 2, 3]


async def test_an_exception_reaches_every_caller_of_its_batch_and_nobody_else() -> None:
    model = FakeModel(fail_on="boom")
    async with batcher(model, max_batch_size=2, max_wait_s=60.0) as (instance, recorder):
        doomed = asyncio.create_task(instance.run(["boom"], [4]))
        neighbour = asyncio.create_task(instance.run(["fine"], [4]))
        results = await asyncio.wait_for(asyncio.gather(doomed, neighbour, return_exceptions=True), GUARD_S)
        later = await asyncio.wait_for(instance.run(["next", "ok"], [4, 2]), GUARD_S)
    assert all(isinstance(result, RuntimeError) and "boom" in str(result) for result in results)
    assert later == ["NEXT", "OK"]
    assert recorder.finished == [True, False]


async def test_result_count_mismatch_fails_the_whole_batch_loudly() -> None:
    model = FakeModel(drop_one=True)
    async with batcher(model, max_batch_size=2, max_wait_s=60.0) as (instance, _):
        first = asyncio.create_task(instance.run(["a"], [1]))
        second = asyncio.create_task(instance.run(["b"], [1]))
        results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), GUARD_S)
    assert all(isinstance(result, BatchResultMismatch) for result in results)
    assert "returned 1 results for a batch of 2" in str(results[0])


async def test_cancelled_callers_are_skipped_and_counted() -> None:
    model = FakeModel()
    model.gate.clear()
    async with batcher(model, max_batch_size=2, max_wait_s=0.01) as (instance, recorder):
        busy = asyncio.create_task(instance.run(["held"], [1]))
        await asyncio.wait_for(asyncio.to_thread(model.entered.wait, GUARD_S), GUARD_S)
        leaving = asyncio.create_task(instance.run(["gone", "away"], [1, 1]))
        staying = asyncio.create_task(instance.run(["stay"], [1]))
        await asyncio.sleep(0)  # both submitted
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        model.gate.set()
        assert await asyncio.wait_for(busy, GUARD_S) == ["HELD"]
        assert await asyncio.wait_for(staying, GUARD_S) == ["STAY"]
    seen = [item for batch in model.batches for item in batch]
    assert "gone" not in seen and "away" not in seen
    assert recorder.skipped_count == 2


async def test_full_queue_rejects_at_once_with_a_retry_hint() -> None:
    model = FakeModel()
    async with batcher(model, max_batch_size=100, max_wait_s=60.0, max_queued=3) as (instance, recorder):
        waiting = asyncio.create_task(instance.run(["a", "b", "c"], [1, 1, 1]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as caught:
            instance.submit(["d"], [1])
        assert caught.value.retry_after_s >= 1
        assert recorder.depths[-1] == 3  # the refused comment never entered the queue
        assert instance.queued == 3
    with pytest.raises(BatcherClosed):  # stop() fails whatever still waits
        await waiting


async def test_inference_runs_off_the_event_loop() -> None:
    model = FakeModel()
    model.gate.clear()
    async with batcher(model, max_batch_size=1) as (instance, _):
        task = asyncio.create_task(instance.run(["slow"], [1]))
        await asyncio.wait_for(asyncio.to_thread(model.entered.wait, GUARD_S), GUARD_S)
        ticks = 0
        for _ in range(5):  # the loop keeps running while the model is busy
            await asyncio.sleep(0.001)
            ticks += 1
        model.gate.set()
        assert await asyncio.wait_for(task, GUARD_S) == ["SLOW"]
    assert ticks == 5
    assert threading.get_ident() not in model.threads


async def test_one_batch_is_prefetched_while_the_previous_computes() -> None:
    model = FakeModel()
    model.gate.clear()
    async with batcher(model, max_batch_size=2, max_wait_s=0.001) as (instance, _):
        task = asyncio.create_task(instance.run(["a", "b", "c", "d", "e", "f"], [1] * 6))
        await asyncio.wait_for(asyncio.to_thread(model.entered.wait, GUARD_S), GUARD_S)
        await eventually(lambda: instance.queued == 2)  # one batch running, one formed, two waiting
        await asyncio.sleep(0.05)
        assert instance.queued == 2
        model.gate.set()
        assert await asyncio.wait_for(task, GUARD_S) == ["A", "B", "C", "D", "E", "F"]
    assert model.batches == [["a", "b"], ["c", "d"], ["e", "f"]]


async def test_submit_after_stop_is_refused() -> None:
    model = FakeModel()
    async with batcher(model) as (instance, _):
        pass
    with pytest.raises(BatcherClosed):
        instance.submit(["late"], [1])
