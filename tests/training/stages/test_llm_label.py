"""llm-label against a fake OpenAI-compatible server: good and misbehaving answers, retries, splits."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.fixtures.fake_llm import FakeLLM, fake_labels, serve
from training.llm.client import ClientSettings, EndpointError
from training.stages.llm_label import llm_label
from training.taxonomy import normalise_labels

TEXTS = [
    (f"id{index:03d}", text)
    for index, text in enumerate(
        [f"哈哈哈 {i}" for i in range(5)]
        + [f"这是哪里？{i}" for i in range(5)]
        + [f"因为他是主角 {i}" for i in range(4)]
        + [f"泪目 {i}" for i in range(3)]
        + [f"前排 {i}" for i in range(5)]
    )
]


def expected(text: str) -> tuple[list[str], list[str]]:
    labels, subcategories, _ = normalise_labels(*fake_labels(text))
    return list(labels), list(subcategories)


def settings(url: str, **overrides: object) -> ClientSettings:
    options: dict[str, object] = {"timeout_s": 5.0, "max_retries": 2, "backoff_base_s": 0.01}
    options.update(overrides)
    return ClientSettings(base_url=url, model="fake", **options)  # type: ignore[arg-type]


def run(fake: FakeLLM, tmp_path: Path, texts: list[tuple[str, str]] = TEXTS, **options: object):  # type: ignore[no-untyped-def]
    client_overrides = options.pop("client", {})
    with serve(fake) as url:
        return llm_label(
            texts,
            client=settings(url, **client_overrides),  # type: ignore[arg-type]
            checkpoint=tmp_path / "labels.checkpoint.jsonl",
            failures_out=tmp_path / "new-folder" / "labels.failed.jsonl",
            progress=False,
            seed=0,
            **options,  # type: ignore[arg-type]
        )


def assert_all_labelled(records: list[dict[str, object]], texts: list[tuple[str, str]] = TEXTS) -> None:
    assert [record["id"] for record in records] == [identifier for identifier, _ in texts]
    for record, (_, text) in zip(records, texts, strict=True):
        assert (record["labels"], record["subcategories"]) == expected(text), text
        assert record["source"] == "llm"
        assert record["text"] == text


def checkpoint_ids(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "labels.checkpoint.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["id"] for line in lines]


def test_good_answers_label_everything_once_with_normalised_and_raw_labels(tmp_path: Path) -> None:
    fake = FakeLLM()
    result = run(fake, tmp_path, batch_size=6, concurrency=3)
    assert_all_labelled(result.records)
    assert sorted(checkpoint_ids(tmp_path)) == sorted(identifier for identifier, _ in TEXTS)
    report = result.report
    assert (report.batches, report.requests, report.parse_failures, report.labelled) == (4, 4, 0, len(TEXTS))
    assert report.response_format == "json_schema"
    assert {request["response_format"] for request in fake.requests} == {"json_schema"}
    tear = next(record for record in result.records if record["text"].startswith("泪目"))
    assert tear["raw_labels"] == [] and tear["raw_subcategories"] == ["moved"]
    assert tear["labels"] == ["emotions_positive"]  # the parent the sub-category implies
    other = next(record for record in result.records if record["text"].startswith("前排"))
    assert other["raw_labels"] == ["Other"] and other["labels"] == ["others"] and other["subcategories"] == ["other"]
    assert report.label_distribution == {"emotions_positive": 8, "others": 5, "social": 5, "information": 4}
    assert report.labels_per_second > 0


@pytest.mark.parametrize("behaviour", ["echo", "prose", "single_quotes"])
def test_wrapped_echoed_and_repairable_answers_are_read(tmp_path: Path, behaviour: str) -> None:
    result = run(FakeLLM(script=lambda n, texts, fmt: behaviour), tmp_path, batch_size=10)
    assert_all_labelled(result.records)
    assert result.report.parse_failures == 0
    assert result.report.requests == 3
    assert result.report.repaired_answers == (3 if behaviour == "single_quotes" else 0)


def test_truncated_answer_keeps_complete_items_and_requeues_the_rest(tmp_path: Path) -> None:
    fake = FakeLLM(script=lambda n, texts, fmt: "truncated" if n == 0 else "good")
    result = run(fake, tmp_path, batch_size=len(TEXTS), concurrency=1)
    assert_all_labelled(result.records)
    report = result.report
    assert report.truncated_answers == 1 and report.partial_answers == 1
    kept = len(TEXTS) - report.missing_ids
    assert 0 < kept < len(TEXTS)
    # the second request carried exactly the ids the truncated answer did not complete
    assert fake.requests[1]["texts"] == [text for _, text in TEXTS[kept:]]
    assert len(checkpoint_ids(tmp_path)) == len(TEXTS)


def test_broken_answers_are_retried_then_split(tmp_path: Path) -> None:
    # The first two sends of the one batch are garbage: retry, then split into halves that succeed.
    fake = FakeLLM(script=lambda n, texts, fmt: "garbage" if n < 2 else "good")
    result = run(fake, tmp_path, batch_size=len(TEXTS), concurrency=1, max_attempts=2)
    assert_all_labelled(result.records)
    report = result.report
    assert (report.parse_failures, report.batch_retries, report.splits) == (2, 1, 1)
    assert [len(request["texts"]) for request in fake.requests] == [22, 22, 11, 11]
    assert report.parse_failure_rate == pytest.approx(2 / 4)


def test_an_item_that_always_fails_is_recorded_as_failed_and_others_finish(tmp_path: Path) -> None:
    texts = [*TEXTS[:6], ("poison", "毒"), *TEXTS[6:10]]

    def script(n: int, batch: list[str], fmt: str) -> str:
        return "garbage" if "毒" in batch else "good"

    result = run(FakeLLM(script=script), tmp_path, texts=texts, batch_size=11, concurrency=2, max_attempts=1)
    assert_all_labelled(result.records, [pair for pair in texts if pair[0] != "poison"])
    report = result.report
    assert report.failed_items == 1 and report.splits == 4  # 11 -> 5|6 -> 3|3 -> 1|2 -> 1|1
    assert report.failures == [{"id": "poison", "reason": "unparseable answer: no answer items in the reply"}]
    failed = [json.loads(line) for line in (tmp_path / "new-folder" / "labels.failed.jsonl").read_text().splitlines()]
    assert failed == report.failures
    assert "poison" not in checkpoint_ids(tmp_path)


def test_unknown_label_names_are_dropped_but_kept_raw(tmp_path: Path) -> None:
    result = run(FakeLLM(), tmp_path, texts=[("x", "毒药")])
    (record,) = result.records
    assert record["labels"] == ["others"] and record["unknown_labels"] == ["Poison-Label"]
    assert result.report.unknown_label_names == {"Poison-Label": 1}


def test_missing_ids_go_back_to_the_queue_and_unknown_ids_are_ignored(tmp_path: Path) -> None:
    fake = FakeLLM(script=lambda n, texts, fmt: "skip_last" if n == 0 else "good")
    result = run(fake, tmp_path, batch_size=len(TEXTS), concurrency=1)
    assert_all_labelled(result.records)
    assert result.report.missing_ids == 1 and result.report.unknown_ids == 1
    assert fake.requests[1]["texts"] == [TEXTS[-1][1]]


def test_server_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    fake = FakeLLM(script=lambda n, texts, fmt: "error_500" if n < 2 else "good")
    result = run(fake, tmp_path, batch_size=len(TEXTS), concurrency=1)
    assert_all_labelled(result.records)
    assert result.report.request_retries == 2 and result.report.failed_requests == 0


def test_a_request_failing_every_retry_requeues_its_batch(tmp_path: Path) -> None:
    fake = FakeLLM(script=lambda n, texts, fmt: "error_500" if n < 3 else "good")
    result = run(fake, tmp_path, batch_size=len(TEXTS), concurrency=1, client={"max_retries": 2})
    assert_all_labelled(result.records)
    assert result.report.failed_requests == 1 and result.report.batch_retries == 1


def test_slow_answers_time_out_and_are_retried(tmp_path: Path) -> None:
    fake = FakeLLM(script=lambda n, texts, fmt: "slow" if n == 0 else "good", slow_seconds=1.5)
    result = run(fake, tmp_path, batch_size=len(TEXTS), concurrency=1, client={"timeout_s": 0.5})
    assert_all_labelled(result.records)
    assert result.report.request_retries == 1


@pytest.mark.parametrize("behaviour", ["reject_schema", "reject_schema_422", "reject_schema_500"])
def test_json_schema_rejected_falls_back_to_json_object(tmp_path: Path, behaviour: str) -> None:
    fake = FakeLLM(script=lambda n, texts, fmt: behaviour)
    result = run(fake, tmp_path, batch_size=8, concurrency=2)
    assert_all_labelled(result.records)
    assert result.report.response_format == "json_object"
    assert len(result.report.format_fallbacks) == 1
    assert result.report.request_retries == 0  # a format fallback is not a failure
    assert fake.requests[-1]["response_format"] == "json_object"


def test_resume_skips_what_the_checkpoint_holds(tmp_path: Path) -> None:
    first = run(FakeLLM(), tmp_path, texts=TEXTS[:10], batch_size=5)
    assert first.report.labelled == 10
    fake = FakeLLM()
    second = run(fake, tmp_path, batch_size=5)
    assert_all_labelled(second.records)
    assert second.report.already_done == 10 and second.report.labelled == len(TEXTS) - 10
    assert all(text not in request["texts"] for request in fake.requests for _, text in TEXTS[:10])
    assert sorted(checkpoint_ids(tmp_path)) == sorted(identifier for identifier, _ in TEXTS)


def test_unreachable_endpoint_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EndpointError, match="cannot reach"):
        llm_label(
            TEXTS,
            client=settings(f"http://127.0.0.1:{port}/v1", max_retries=1),
            checkpoint=tmp_path / "c.jsonl",
            progress=False,
        )


def test_wrong_route_is_an_endpoint_error_not_a_retry(tmp_path: Path) -> None:
    with serve(FakeLLM()) as url, pytest.raises(EndpointError, match="404"):
        llm_label(
            TEXTS,
            client=settings(url.removesuffix("/v1") + "/wrong"),
            checkpoint=tmp_path / "c.jsonl",
            progress=False,
        )
