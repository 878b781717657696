"""Issue 9 on the real app (lifespan included, tiny bundles): no request may stall the server, no stalled client
may hold it. Protocol-level limits (headers, connections) are in test_limits.py, on real uvicorn."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message

import service.parsing
from service.settings import Settings
from tests.fixtures.serving import classify_scope, serving

GUARD_S = 10.0
TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(tiny_models_dir: Path) -> Settings:
    return Settings(models_dir=tiny_models_dir, warmup_runs=0, max_wait_ms=1)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


async def post_raw(client: httpx.AsyncClient, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return await client.post("/classify", content=body, headers={"content-type": content_type})


# --- defect 1: validation amplification ---------------------------------------------------------


async def test_too_many_comments_is_413_before_any_item_is_validated(settings: Settings) -> None:
    body = json.dumps({"comments": [{}] * 200_000}).encode()  # ~600 KB: every item would fail validation
    async with serving(settings) as (_, client):
        started = time.perf_counter()
        response = await post_raw(client, body)
        elapsed = time.perf_counter() - started
    assert response.status_code == 413, response.text[:500]
    assert error_of(response)["code"] == "too_many_comments"
    # Parsing stopped at the 515th object: the 200,000 were never built, let alone validated.
    assert error_of(response)["details"] == [{"field": "comments", "problem": "more than 256 items"}]
    assert len(response.content) < 1000
    assert elapsed < 3.0  # was 3.9 s (and a 12 MB answer) on the 2-core box


async def test_a_few_comments_too_many_are_counted(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json={"comments": [{"text": "好"}] * 300})
    assert response.status_code == 413
    assert error_of(response)["details"] == [{"field": "comments", "problem": "300 items, at most 256"}]


async def test_a_422_lists_at_most_20_problems_and_counts_the_rest(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json={"comments": [{"txt": 1}] * 256})
    assert response.status_code == 422
    error = error_of(response)
    assert len(error["details"]) == 21
    assert error["details"][-1] == {"field": "<body>", "problem": f"{512 - 20} more problems not listed"}
    assert "(and 507 more)" in error["message"]  # 256 x (missing text + unknown txt) = 512 problems


async def test_a_large_body_is_parsed_off_the_event_loop(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    parse = service.parsing.parse_classify_request

    def recording(body: bytes, **options: Any) -> Any:
        threads.append(threading.get_ident())
        return parse(body, **options)

    monkeypatch.setattr(service.parsing, "parse_classify_request", recording)
    small = {"comments": [{"text": "好"}]}
    large = {"comments": [{"text": "好" * 500}] * 100}
    assert len(json.dumps(large)) > service.parsing.OFFLOAD_BYTES
    async with serving(settings) as (_, client):
        assert (await client.post("/classify", json=small)).status_code == 200
        assert (await client.post("/classify", json=large)).status_code == 200
    assert threads[0] == threading.get_ident() != threads[1]


# --- defect 7: the error table's gaps -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem", "where"),
    [
        (b'{"comments": [{"text": "\xff"}]}', "invalid UTF-8 byte 0xff", "at character 24"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply", "line 1 column "),
        (b'{"comments": [{"text": "x"}], "information_threshold": ' + b"1" * 5001 + b"}", "4300 digits", "column 56"),
        (b'{"comments": [{"text": "a\x01b"}]}', "Invalid control character", "line 1 column 26 (character 25)"),
        (b'{"comments": [', "Expecting value", "line 1 column 15"),
    ],
    ids=["invalid-utf8", "deep-nesting", "huge-number", "control-character", "truncated"],
)
async def test_malformed_json_is_invalid_json_with_a_position(
    settings: Settings, body: bytes, problem: str, where: str
) -> None:
    async with serving(settings) as (_, client):
        response = await post_raw(client, body)
    assert response.status_code == 400, response.text[:500]
    error = error_of(response)
    assert error["code"] == "invalid_json"
    assert problem in error["message"] and where in error["message"], error["message"]
    assert "at at" not in error["message"]
    assert problem in error["details"][0]["problem"] and where in error["details"][0]["problem"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_body_that_is_not_declared_json_is_415_naming_content_type(
    settings: Settings, content_type: str
) -> None:
    async with serving(settings) as (_, client):
        response = await post_raw(client, '{"comments": [{"text": "好"}]}'.encode(), content_type)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    assert "Content-Type" in error_of(response)["message"] and content_type in error_of(response)["message"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/problem+json", None])
async def test_json_content_types_and_none_are_accepted(settings: Settings, content_type: str | None) -> None:
    body = b'{"comments": [{"text": "\xe5\xa5\xbd"}]}'
    async with serving(settings) as (_, client):
        request = client.build_request("POST", "/classify", content=body)
        if content_type is None:
            request.headers.pop("content-type", None)
        else:
            request.headers["content-type"] = content_type
        response = await client.send(request)
    assert response.status_code == 200, response.text


async def test_two_authorization_headers_are_refused(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, auth_token=TOKEN, warmup_runs=0)
    async with serving(settings) as (_, client):
        for pair in ([AUTH["authorization"], "Bearer wrong"], ["Bearer wrong", AUTH["authorization"]]):
            headers = [("authorization", value) for value in pair]
            response = await client.post("/classify", json={"comments": [{"text": "好"}]}, headers=headers)
            assert response.status_code == 401, pair
        single = await client.post("/classify", json={"comments": [{"text": "好"}]}, headers=AUTH)
    assert single.status_code == 200


# --- defect 8: what an unauthenticated caller sees -------------------------------------------------


@pytest.fixture
def models_with_provenance(tiny_models_dir: Path, tmp_path: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    path = models / "emotion" / "bundle.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["provenance"] = {
        "data": [{"path": "data/labelled.parquet", "rows": 10}],
        "git_commit": "abc123",
        "config": {
            "llm": {"base_url": "http://10.0.3.7:8000/v1", "model": "qwen", "api_key_env": "LLM_KEY"},
            "mirror": "https://internal.example/models",
            "proxy_host": "squid.internal",
            "seed": 7,
        },
    }
    path.write_text(json.dumps(metadata), encoding="utf-8")
    return models


async def test_with_a_token_metadata_and_docs_need_it_but_health_does_not(models_with_provenance: Path) -> None:
    settings = Settings(models_dir=models_with_provenance, auth_token=TOKEN, warmup_runs=0)
    async with serving(settings) as (_, client):
        for path in ("/v1/models", "/docs", "/openapi.json", "/redoc"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert (await client.get(path, headers=AUTH)).status_code == 200, path
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path


async def test_metadata_can_stay_open_by_setting(models_with_provenance: Path) -> None:
    settings = Settings(models_dir=models_with_provenance, auth_token=TOKEN, auth_covers_metadata=False, warmup_runs=0)
    async with serving(settings) as (_, client):
        for path in ("/v1/models", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.post("/classify", json={"comments": [{"text": "好"}]})).status_code == 401


async def test_provenance_never_shows_addresses(models_with_provenance: Path) -> None:
    settings = Settings(models_dir=models_with_provenance, warmup_runs=0)
    async with serving(settings) as (_, client):
        response = await client.get("/v1/models")
    provenance = response.json()["models"][0]["provenance"]
    text = json.dumps(provenance)
    assert "10.0.3.7" not in text and "internal" not in text
    assert provenance["config"]["mirror"] == provenance["config"]["proxy_host"] == "<redacted>"
    assert provenance["config"]["llm"] == {"base_url": "<redacted>", "model": "qwen", "api_key_env": "LLM_KEY"}
    assert provenance["config"]["seed"] == 7 and provenance["git_commit"] == "abc123"


# --- defects 2 and 3: a body that does not arrive ---------------------------------------------------


async def _stalled_upload(settings: Settings, *, drain_after_s: float | None) -> tuple[list[Message], float]:
    """POST /classify whose body stops after 10 bytes; what the app sent, and how long it took."""
    sent: list[Message] = []
    first = True

    async def receive() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"comments', "more_body": True}
        await asyncio.sleep(3600)  # the client never sends the rest
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = classify_scope(100)
    async with serving(settings) as (app, _):
        lifecycle = app.state.service.lifecycle
        started = time.perf_counter()
        call = asyncio.ensure_future(app(scope, receive, send))
        if drain_after_s is not None:
            await asyncio.sleep(drain_after_s)
            assert lifecycle.in_flight == 1  # admitted, holding the drain
            lifecycle.begin_drain()
        await asyncio.wait_for(call, GUARD_S)
        elapsed = time.perf_counter() - started
        assert lifecycle.in_flight == 0
    return sent, elapsed


def _status_and_body(sent: list[Message]) -> tuple[int, dict[str, str], dict[str, Any]]:
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return int(start["status"]), headers, json.loads(body)


async def test_a_stalled_upload_gets_408_and_close_after_the_body_timeout(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, warmup_runs=0, body_timeout_s=0.3)
    sent, elapsed = await _stalled_upload(settings, drain_after_s=None)
    status, headers, body = _status_and_body(sent)
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["code"] == "request_timeout" and "0.3 s" in body["error"]["message"]
    assert 0.25 < elapsed < 3.0


async def test_a_drain_does_not_wait_for_a_body_still_arriving(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, warmup_runs=0, body_timeout_s=60)
    sent, elapsed = await _stalled_upload(settings, drain_after_s=0.2)
    status, headers, body = _status_and_body(sent)
    assert status == 408 and headers["connection"] == "close"
    assert "shutting down" in body["error"]["message"]
    assert elapsed < 3.0  # not the 60 s body timeout, nor the 30 s drain timeout
