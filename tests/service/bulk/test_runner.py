"""A shard run: the same decisions as the router, a partition over shards, resume after damage, refused mixes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from service.bulk import output as bulk_output
from service.bulk.inputs import discover_inputs
from service.bulk.output import RunMismatch, manifest_path
from service.bulk.runner import BulkOptions, bulk_settings, run_shard
from service.routing import Router, RoutingPolicy
from service.runtime import Runtime
from service.settings import Settings
from tests.fixtures.fake_models import (
    FakeClassifier,
    emotion_metadata,
    emotion_prediction,
    information_metadata,
    information_prediction,
)


def generated_texts(count: int) -> list[str | None]:
    """Danmaku-like texts written for the tests, with a few empty ones."""
    words = ["前方高能", "awsl", "哈哈哈哈哈哈", "这首曲子的作者是谁？", "打卡", "泪目", "2333333", "有人吗", "好听"]
    texts: list[str | None] = [f"{words[i % len(words)]} {words[(i * 7) % len(words)]} #{i}" for i in range(count)]
    for index in range(3, count, 41):
        texts[index] = None if index % 2 else "  "
    return texts


def write_input(path: Path, texts: Sequence[str | None], row_group_size: int = 17) -> Path:
    table = pa.table({"cid": [f"c{i}" for i in range(len(texts))], "text": list(texts)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def read_output(output_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = ds.dataset(output_dir, format="parquet").to_table().to_pylist()
    return sorted(rows, key=lambda row: (row["source"], row["row"]))


@asynccontextmanager
async def tiny_runtime(models_dir: Path, **settings: Any) -> AsyncIterator[tuple[Runtime, int]]:
    loaded, call_size = bulk_settings(Settings(models_dir=models_dir, warmup_runs=0, **settings))
    runtime = Runtime.load(loaded)
    runtime.start()
    try:
        yield runtime, call_size
    finally:
        await runtime.stop()


async def test_every_row_gets_the_routers_decision(tiny_models_dir: Path, tmp_path: Path) -> None:
    texts = generated_texts(130)
    source = write_input(tmp_path / "in.parquet", texts)
    async with tiny_runtime(tiny_models_dir, max_batch_size=8) as (runtime, call_size):
        options = BulkOptions(id_column="cid", chunk_rows=25, comments_per_call=call_size)
        manifest = await run_shard(runtime.router, discover_inputs(source), tmp_path / "out", options)
        wanted = [text for text in texts if text is not None and text.strip()]
        expected = iter((await runtime.router.classify(wanted)).decisions)

    rows = read_output(tmp_path / "out")
    assert [row["row"] for row in rows] == list(range(130))
    assert [row["id"] for row in rows] == [f"c{i}" for i in range(130)]
    assert [row["text"] for row in rows] == texts
    for row, text in zip(rows, texts, strict=True):
        assert row["source"] == "in.parquet"
        assert (row["emotion_version"], row["information_version"]) == ("test-emotion-1", "test-info-1")
        if text is None or not text.strip():
            assert (row["label"], row["labels"], row["route"], row["information_probability"]) == (None, [], [], None)
            continue
        decision = next(expected)
        assert row["label"] == decision.label
        assert row["subcategory"] == decision.subcategory
        assert row["labels"] == decision.labels
        assert row["route"] == decision.route
        assert row["information_probability"] == pytest.approx(decision.information_probability)
    assert manifest.rows == 130 and manifest.empty_texts == 4
    assert manifest.label_counts == dict(sorted(Counter(row["label"] for row in rows if row["label"]).items()))
    assert [part.chunk for part in manifest.parts] == [0, 1, 2, 3, 4, 5]
    assert (manifest.resumed_parts, manifest.written_parts) == (0, 6)
    on_disk = json.loads(manifest_path(tmp_path / "out", 0, 1).read_text())
    assert on_disk["rows"] == 130 and on_disk["run"]["models"] == {
        "emotion": "test-emotion-1",
        "information": "test-info-1",
    }


async def test_shards_partition_the_input(tiny_models_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_input(inputs / "a.parquet", generated_texts(95), row_group_size=30)
    with (inputs / "b.jsonl").open("w", encoding="utf-8") as handle:
        for text in generated_texts(61):
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    files = discover_inputs(inputs)
    seen: list[set[tuple[str, int]]] = []
    async with tiny_runtime(tiny_models_dir) as (runtime, call_size):
        for shard in range(3):
            out = tmp_path / "out"
            options = BulkOptions(shard_index=shard, num_shards=3, chunk_rows=10, comments_per_call=call_size)
            manifest = await run_shard(runtime.router, files, out, options)
            mine = {
                (part.source, row)
                for part in manifest.parts
                for row in range(part.start_row, part.start_row + part.rows)
            }
            assert len(mine) == manifest.rows > 0
            seen.append(mine)
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    expected = {("a.parquet", row) for row in range(95)} | {("b.jsonl", row) for row in range(61)}
    assert seen[0] | seen[1] | seen[2] == expected
    rows = read_output(tmp_path / "out")
    assert [(row["source"], row["row"]) for row in rows] == sorted(expected)  # each exactly once
    assert sorted(path.name for path in (tmp_path / "out" / "_manifests").iterdir()) == [
        "shard-00000-of-00003.json",
        "shard-00001-of-00003.json",
        "shard-00002-of-00003.json",
    ]


# --- with models whose outputs are controlled ---------------------------------------------------


def fake_router(texts: Sequence[str], information: dict[str, float]) -> tuple[Router, FakeClassifier]:
    """Every text's top emotion label is `others` (routed); its information probability from ``information``."""
    emotion_table = {
        text: emotion_prediction({"others": 0.9}, {"other": 0.9, "situated_knowledge": 0.4}) for text in texts
    }
    information_table = {text: information_prediction(information.get(text, 0.1)) for text in texts}
    emotion = FakeClassifier(emotion_metadata(), emotion_table)
    router = Router(
        emotion, FakeClassifier(information_metadata(), information_table), RoutingPolicy.from_settings(Settings())
    )
    return router, emotion


@pytest.mark.parametrize(
    ("mode", "override", "informative"),
    [("precision", None, {"q85"}), ("recall", None, {"q50", "q85"}), ("precision", 0.05, {"q10", "q50", "q85"})],
)
async def test_mode_and_threshold_override_decide_information(
    tmp_path: Path, mode: str, override: float | None, informative: set[str]
) -> None:
    texts = ["q10", "q50", "q85"]
    router, _ = fake_router(texts, {"q10": 0.1, "q50": 0.5, "q85": 0.85})
    source = write_input(tmp_path / "in.parquet", texts)
    options = BulkOptions(mode=mode, information_threshold=override, chunk_rows=2)  # type: ignore[arg-type]
    await run_shard(router, discover_inputs(source), tmp_path / "out", options)
    rows = read_output(tmp_path / "out")
    assert {row["text"] for row in rows if row["label"] == "information"} == informative
    assert all(row["subcategory"] == ("situated_knowledge" if row["text"] in informative else "other") for row in rows)
    run = json.loads((tmp_path / "out" / "_run.json").read_text())
    assert run["mode"] == mode
    assert run["information_threshold"] == (
        override if override is not None else {"precision": 0.8, "recall": 0.3}[mode]
    )


async def test_a_rerun_keeps_finished_parts_and_redoes_missing_broken_and_half_written_ones(tmp_path: Path) -> None:
    texts = [f"t{i}" for i in range(50)]
    source = write_input(tmp_path / "in.parquet", texts)
    out = tmp_path / "out"
    options = BulkOptions(chunk_rows=10, comments_per_call=4)
    router, _ = fake_router(texts, {})
    await run_shard(router, discover_inputs(source), out, options)

    (out / "in.parquet" / "chunk-000001.parquet").unlink()  # lost
    broken = out / "in.parquet" / "chunk-000003.parquet"
    broken.write_bytes(broken.read_bytes()[:100])  # cut short (cannot happen with the rename; checked anyway)
    stale = out / "in.parquet" / ".chunk-000001.parquet.0123abcd.tmp"
    stale.write_bytes(b"half a part")  # what a SIGKILL during a write leaves

    router, emotion = fake_router(texts, {})
    manifest = await run_shard(router, discover_inputs(source), out, options)
    redone = sorted(text for call in emotion.calls for text in call)
    assert redone == sorted(texts[10:20] + texts[30:40])
    assert (manifest.resumed_parts, manifest.written_parts) == (3, 2)
    assert not stale.exists()
    assert [row["text"] for row in read_output(out)] == texts


async def test_a_run_with_other_parameters_is_refused(tmp_path: Path) -> None:
    texts = ["a", "b", "c"]
    source = write_input(tmp_path / "in.parquet", texts)
    router, _ = fake_router(texts, {})
    await run_shard(router, discover_inputs(source), tmp_path / "out", BulkOptions(chunk_rows=2))
    with pytest.raises(RunMismatch, match=r"chunk_rows: 2 there, 1 now"):
        await run_shard(router, discover_inputs(source), tmp_path / "out", BulkOptions(chunk_rows=1))
    with pytest.raises(RunMismatch, match=r"information_threshold: 0.8 there, 0.3 now"):
        await run_shard(router, discover_inputs(source), tmp_path / "out", BulkOptions(chunk_rows=2, mode="recall"))
    write_input(tmp_path / "in.parquet", [*texts, "d"])  # the input changed under the output
    with pytest.raises(RunMismatch, match=r"inputs: "):
        await run_shard(router, discover_inputs(source), tmp_path / "out", BulkOptions(chunk_rows=2))


async def test_a_failed_write_leaves_neither_a_part_nor_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["a", "b", "c"]
    source = write_input(tmp_path / "in.parquet", texts)
    router, _ = fake_router(texts, {})
    real_write = pq.write_table

    def write_then_fail(table: pa.Table, where: Path, **options: Any) -> None:
        real_write(table, where, **options)
        raise OSError("disk full")

    monkeypatch.setattr(bulk_output.pq, "write_table", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        await run_shard(router, discover_inputs(source), tmp_path / "out", BulkOptions(chunk_rows=2))
    assert list((tmp_path / "out" / "in.parquet").iterdir()) == []


async def test_a_joint_bundle_alone_classifies_a_shard(tiny_joint_models_dir: Path, tmp_path: Path) -> None:
    texts = generated_texts(40)
    source = write_input(tmp_path / "in.parquet", texts)
    async with tiny_runtime(tiny_joint_models_dir, max_batch_size=8) as (runtime, call_size):
        assert runtime.router.information is None
        options = BulkOptions(chunk_rows=20, comments_per_call=call_size)
        manifest = await run_shard(runtime.router, discover_inputs(source), tmp_path / "out", options)
        wanted = [text for text in texts if text is not None and text.strip()]
        expected = iter((await runtime.router.classify(wanted)).decisions)
    rows = [row for row in read_output(tmp_path / "out") if row["label"] is not None]
    assert len(rows) == len(wanted) and manifest.run.models == {"emotion": "test-joint-1"}
    for row in rows:
        decision = next(expected)
        # the information decision came from the emotion bundle itself
        assert (row["emotion_version"], row["information_version"]) == ("test-joint-1", "test-joint-1")
        assert row["route"] == ["emotion"] and row["label"] == decision.label
        assert row["information_probability"] == pytest.approx(decision.information_probability)
