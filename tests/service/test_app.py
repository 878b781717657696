"""The real app (lifespan included) on the tiny bundles: the happy path and one test per error-table row."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.metrics import Metrics
from service.model import Prediction
from service.routing import Router, RoutingPolicy
from service.runtime import Runtime
from service.settings import Settings
from tests.fixtures.fake_models import FakeClassifier, emotion_metadata, information_metadata
from tests.fixtures.serving import classify_scope, free_port, metric_samples, serving
from training.taxonomy import MAIN_LABELS

GUARD_S = 10.0


@pytest.fixture
def settings(tiny_models_dir: Path) -> Settings:
    return Settings(models_dir=tiny_models_dir, warmup_runs=1, max_wait_ms=2)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def fields_of(response: httpx.Response) -> list[str]:
    return [detail["field"] for detail in error_of(response)["details"]]


# --- the happy path ---------------------------------------------------------------------------


async def test_classify_answers_every_comment_in_order(settings: Settings) -> None:
    comments = [{"id": "a", "text": "前方高能！！"}, {"text": "这首曲子的作者是谁？"}, {"id": "c", "text": "awsl"}]
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json={"comments": comments, "return_scores": True})
        plain = await client.post("/classify", json={"comments": comments[:1], "mode": "recall"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [result["id"] for result in body["results"]] == ["a", None, "c"]
    assert body["models"] == {"emotion": "test-emotion-1", "information": "test-info-1"}
    assert body["mode"] == "precision" and body["information_threshold"] == 0.8
    for result in body["results"]:
        assert result["label"] in MAIN_LABELS
        assert set(result["labels"]) <= set(MAIN_LABELS)
        assert result["route"][0] == "emotion"
        ran_information = result["route"] == ["emotion", "information"]
        assert (result["information_probability"] is not None) == ran_information
        assert set(result["scores"]) == set(result["route"])
        top = max(result["scores"]["emotion"]["main"].items(), key=lambda item: item[1])[0]
        assert ran_information == (top in ("others", "social"))
    assert plain.json()["results"][0]["scores"] is None
    assert plain.json()["information_threshold"] == 0.3


async def test_health_readiness_and_model_metadata(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        assert (await client.get("/healthz")).json() == {"status": "alive"}
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        models = (await client.get("/v1/models")).json()
    assert [model["name"] for model in models["models"]] == ["emotion", "information"]
    assert models["models"][1]["features"] == [
        "log_word_count",
        "char_count",
        "question_marks",
        "has_url",
        "digit_count",
    ]
    assert models["models"][0]["execution_providers"] == ["CPUExecutionProvider"]
    assert models["routing"] == {
        "routed_labels": ["others", "social"],
        "thresholds": {"precision": 0.8, "recall": 0.3},
        "default_mode": "precision",
    }


# --- the error table: one test per row ----------------------------------------------------------


async def test_invalid_json_is_400(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        response = await client.post(
            "/classify", content=b'{"comments": [', headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"
    assert "not valid JSON" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "comments"),  # missing
        ({"comments": [{"id": "x"}]}, "comments[0].text"),  # missing nested
        ({"comments": [{"text": "好"}], "verbose": True}, "verbose"),  # extra
        ({"comments": [{"text": "好"}, {"text": "好", "lang": "zh"}]}, "comments[1].lang"),  # extra nested
    ],
)
async def test_missing_and_extra_fields_are_422_naming_the_field(
    settings: Settings, body: dict[str, Any], field: str
) -> None:
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json=body)
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"
    assert field in fields_of(response)
    assert field in error_of(response)["message"]


async def test_an_empty_list_is_422(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json={"comments": []})
    assert response.status_code == 422
    assert fields_of(response) == ["comments"]


async def test_too_many_comments_is_413(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, max_comments_per_request=3, warmup_runs=0)
    async with serving(settings) as (_, client):
        ok = await client.post("/classify", json={"comments": [{"text": "好"}] * 3})
        response = await client.post("/classify", json={"comments": [{"text": "好"}] * 4})
    assert ok.status_code == 200
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_many_comments"
    assert "4 comments" in error_of(response)["message"] and "limit is 3" in error_of(response)["message"]


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
async def test_an_empty_text_is_422(settings: Settings, text: str) -> None:
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json={"comments": [{"text": "好"}, {"text": text}]})
    assert response.status_code == 422
    assert fields_of(response) == ["comments[1].text"]


async def test_an_over_long_text_is_422(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, max_text_chars=10, warmup_runs=0)
    async with serving(settings) as (_, client):
        ok = await client.post("/classify", json={"comments": [{"text": "一" * 10}]})
        response = await client.post("/classify", json={"comments": [{"text": "好"}, {"text": "一" * 11}]})
    assert ok.status_code == 200
    assert response.status_code == 422
    assert fields_of(response) == ["comments[1].text"]
    assert "11 characters, at most 10" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"comments": [{"text": 5}]}, "comments[0].text"),
        ({"comments": [{"text": "好", "id": 7}]}, "comments[0].id"),
        ({"comments": "好"}, "comments"),
        ({"comments": [{"text": "好"}], "return_scores": "yes"}, "return_scores"),
        ({"comments": [{"text": "好"}], "mode": "fast"}, "mode"),
        ({"comments": [{"text": "好"}], "information_threshold": "0.5"}, "information_threshold"),
        ([{"text": "好"}], "<body>"),
    ],
)
async def test_wrong_types_are_422(settings: Settings, body: Any, field: str) -> None:
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json=body)
    assert response.status_code == 422
    assert field in fields_of(response)


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "NaN", "Infinity"])
async def test_out_of_range_thresholds_are_422(settings: Settings, threshold: str) -> None:
    body = '{"comments": [{"text": "好"}], "information_threshold": ' + threshold + "}"
    async with serving(settings) as (_, client):
        response = await client.post("/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert fields_of(response) == ["information_threshold"]


async def test_an_unpaired_surrogate_is_422_not_500(settings: Settings) -> None:
    body = '{"comments": [{"text": "ok \\ud800"}]}'
    async with serving(settings) as (_, client):
        response = await client.post("/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert fields_of(response) == ["comments[0].text"]


async def test_a_body_over_the_limit_is_413_before_parsing(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, max_body_bytes=1024, warmup_runs=0)
    oversized = b"{" + b" " * 2000  # not even JSON: the size check comes first
    async with serving(settings) as (_, client):
        response = await client.post("/classify", content=oversized, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"
    assert "2001 bytes" in error_of(response)["message"]


async def test_a_streamed_body_over_the_limit_is_413_without_content_length(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, max_body_bytes=1024, warmup_runs=0)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b" " * 256

    async with serving(settings) as (_, client):
        request = client.build_request("POST", "/classify", content=chunks())
        assert "content-length" not in request.headers
        response = await client.send(request)
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"
    assert len(sent) < 100  # stopped reading once over the limit


async def test_a_full_queue_is_429_with_retry_after(tiny_models_dir: Path) -> None:
    # Nothing flushes for 10 s, so the first request's two comments fill the queue of two.
    settings = Settings(
        models_dir=tiny_models_dir,
        max_wait_ms=10_000,
        max_batch_size=64,
        max_queue_size=2,
        max_comments_per_request=2,
        warmup_runs=0,
    )
    async with serving(settings) as (_, client):
        first = asyncio.create_task(client.post("/classify", json={"comments": [{"text": "甲"}, {"text": "乙"}]}))
        await _until_metric(client, 'danmaku_queue_depth{model="emotion"}', 2.0)
        response = await client.post("/classify", json={"comments": [{"text": "丙"}]})
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 429
    assert error_of(response)["code"] == "overloaded"
    assert response.headers["retry-after"].isdigit() and int(response.headers["retry-after"]) >= 1
    assert 'danmaku_rejections_total{reason="overloaded"} 1.0' in metrics


async def test_not_ready_is_503(settings: Settings) -> None:
    app = create_app(settings)  # lifespan not entered: nothing loaded
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/classify", json={"comments": [{"text": "好"}]})
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert response.status_code == 503 and error_of(response)["code"] == "not_ready"
    assert ready.status_code == 503
    assert alive.status_code == 200


async def test_shutting_down_is_503_with_connection_close(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        app.state.service.lifecycle.begin_drain()
        response = await client.post("/classify", json={"comments": [{"text": "好"}]})
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert error_of(response)["code"] == "shutting_down"
    assert response.headers["connection"] == "close"
    assert ready.status_code == 503


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong-token"}, {"authorization": "Basic s3cret-token"}, {"authorization": "Bearer"}],
)
async def test_a_missing_or_wrong_bearer_token_is_401_without_saying_which(
    tiny_models_dir: Path, headers: dict[str, str]
) -> None:
    settings = Settings(models_dir=tiny_models_dir, auth_token="s3cret-token", warmup_runs=0)
    async with serving(settings) as (_, client):
        response = await client.post("/classify", json={"comments": [{"text": "好"}]}, headers=headers)
        health = await client.get("/healthz")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert error_of(response) == {"code": "unauthorized", "message": "missing or invalid bearer token", "details": []}
    assert health.status_code == 200  # only /classify is protected


async def test_the_right_token_from_a_file_is_accepted(tiny_models_dir: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-secret\n", encoding="utf-8")
    settings = Settings(models_dir=tiny_models_dir, auth_token_file=token_file, warmup_runs=0)
    async with serving(settings) as (_, client):
        good = await client.post(
            "/classify", json={"comments": [{"text": "好"}]}, headers={"authorization": "Bearer from-a-secret"}
        )
        bad = await client.post(
            "/classify", json={"comments": [{"text": "好"}]}, headers={"authorization": "Bearer from-a-secre"}
        )
    assert good.status_code == 200
    assert bad.status_code == 401


class _Exploding(FakeClassifier):
    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        raise RuntimeError("driver crashed reading /opt/secret/model.onnx")


async def test_an_unknown_error_is_a_generic_500(settings: Settings) -> None:
    def load(settings: Settings, metrics: Metrics) -> Runtime:
        router = Router(
            _Exploding(emotion_metadata(), {}),
            FakeClassifier(information_metadata(), {}),
            RoutingPolicy.from_settings(settings),
        )
        return Runtime([], router, [])

    async with serving(settings, load_runtime=load) as (_, client):
        response = await client.post("/classify", json={"comments": [{"text": "好"}]})
    assert response.status_code == 500
    assert error_of(response) == {"code": "internal_error", "message": "internal server error", "details": []}
    assert "secret" not in response.text


async def test_unknown_paths_and_methods_use_the_error_shape(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        missing = await client.get("/nowhere")
        wrong_method = await client.get("/classify")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "POST"


# --- batching, metrics, cancellation -----------------------------------------------------------


async def _until_metric(client: httpx.AsyncClient, sample: str, value: float) -> None:
    async def poll() -> None:
        while f"{sample} {value}" not in (await client.get("/metrics")).text:  # noqa: ASYNC110 - polling state owned by others
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), GUARD_S)


async def test_concurrent_clients_are_served_in_batches_larger_than_one(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, max_wait_ms=100, max_batch_size=64, warmup_runs=0)
    async with serving(settings) as (_, client):
        responses = await asyncio.gather(
            *(client.post("/classify", json={"comments": [{"id": str(n), "text": f"第{n}条"}]}) for n in range(16))
        )
        metrics = metric_samples((await client.get("/metrics")).text)
    assert [response.json()["results"][0]["id"] for response in responses] == [str(n) for n in range(16)]
    model = (("model", "emotion"),)
    batches = metrics[("danmaku_batch_size_comments_count", model)]
    comments = metrics[("danmaku_batch_size_comments_sum", model)]
    assert comments == 16
    assert batches < 16  # so at least one batch held comments of several clients
    assert metrics[("danmaku_requests_total", (("route", "/classify"), ("status", "200")))] == 16


async def test_metrics_cover_the_issue_list(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        await client.post("/classify", json={"comments": [{"text": "这首曲子的作者是谁？"}, {"text": "哈哈"}]})
        await client.post("/classify", json={"comments": []})
        text = (await client.get("/metrics")).text
    for name in (
        "danmaku_requests_total",
        "danmaku_request_duration_seconds_bucket",
        "danmaku_queue_depth",
        "danmaku_queue_wait_seconds_bucket",
        "danmaku_batch_size_comments_bucket",
        "danmaku_batch_tokens_bucket",
        "danmaku_inference_duration_seconds_bucket",
        "danmaku_batch_padding_ratio_bucket",
        "danmaku_predictions_total",
        "danmaku_rejections_total",
        "danmaku_model_info",
        "danmaku_requests_in_flight",
    ):
        assert name in text, name
    assert 'danmaku_batch_size_comments_bucket{le="1.0",model="emotion"}' in text  # power-of-two buckets
    assert 'le="2.0"' in text and 'le="4.0"' in text
    assert (
        'danmaku_model_info{model="emotion",provider="CPUExecutionProvider",task="emotion",version="test-emotion-1"}'
        in text
    )
    assert 'danmaku_rejections_total{reason="invalid_request"} 1.0' in text


async def test_metrics_can_live_on_a_separate_port(tiny_models_dir: Path) -> None:
    port = free_port()
    settings = Settings(models_dir=tiny_models_dir, metrics_port=port, warmup_runs=0)
    async with serving(settings) as (_, client):
        on_api = await client.get("/metrics")
        async with httpx.AsyncClient() as outside:
            separate = await outside.get(f"http://127.0.0.1:{port}/metrics")
    assert on_api.status_code == 404
    assert separate.status_code == 200
    assert "danmaku_model_info" in separate.text


async def test_a_client_that_disconnects_is_cancelled_and_its_comments_skipped(tiny_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_models_dir, max_wait_ms=300, max_batch_size=64, warmup_runs=0)
    app = create_app(settings)
    body = json.dumps({"comments": [{"text": "甲"}, {"text": "乙"}, {"text": "丙"}]}).encode()
    leave = asyncio.Event()
    messages: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = classify_scope(len(body), state={})
    async with app.router.lifespan_context(app):
        call = asyncio.create_task(app(scope, receive, send))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await _until_metric(client, 'danmaku_queue_depth{model="emotion"}', 3.0)
            leave.set()
            await asyncio.wait_for(call, GUARD_S)
            await _until_metric(client, 'danmaku_skipped_comments_total{model="emotion"}', 3.0)
            text = (await client.get("/metrics")).text
    assert 'danmaku_requests_total{route="/classify",status="499"} 1.0' in text
    assert 'danmaku_batch_size_comments_count{model="emotion"} 0.0' in text  # nothing ran for it


async def test_openapi_documents_the_limits_errors_and_auth(tiny_models_dir: Path) -> None:
    settings = Settings(
        models_dir=tiny_models_dir, max_comments_per_request=7, max_text_chars=42, auth_token="t", warmup_runs=0
    )
    async with serving(settings) as (_, client):
        # With a token, the schema and docs need it too (DANMAKU_AUTH_COVERS_METADATA, on by default).
        schema = (await client.get("/openapi.json", headers={"Authorization": "Bearer t"})).json()
        docs = await client.get("/docs", headers={"Authorization": "Bearer t"})
    components = schema["components"]["schemas"]
    assert components["ClassifyRequest"]["properties"]["comments"]["maxItems"] == 7
    assert components["Comment"]["properties"]["text"]["maxLength"] == 42
    classify = schema["paths"]["/classify"]["post"]
    assert {"200", "400", "401", "413", "422", "429", "503"} <= set(classify["responses"])
    assert classify["security"] == [{"bearer": []}]
    assert docs.status_code == 200


async def test_a_models_dir_with_only_a_joint_emotion_bundle_is_served(tiny_joint_models_dir: Path) -> None:
    settings = Settings(models_dir=tiny_joint_models_dir, warmup_runs=1, max_wait_ms=2)
    comments = [{"text": "前方高能！！"}, {"text": "这首曲子的作者是谁？"}, {"text": "awsl"}, {"text": "有人吗"}]
    async with serving(settings) as (_, client):
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        response = await client.post("/classify", json={"comments": comments, "return_scores": True})
        models = (await client.get("/v1/models")).json()
        exposition = (await client.get("/metrics")).text
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["models"] == {"emotion": "test-joint-1"}
    for result in body["results"]:
        assert result["label"] in MAIN_LABELS and result["route"] == ["emotion"]
        scores = result["scores"]["emotion"]
        assert set(scores) == {"main", "sub", "information"}
        top = max(scores["main"].items(), key=lambda item: item[1])[0]
        routed = top in ("others", "social")
        assert (result["information_probability"] is not None) == routed
        if routed:
            assert result["information_probability"] == pytest.approx(scores["information"]["information"])
    assert [model["name"] for model in models["models"]] == ["emotion"]
    assert models["models"][0]["features"] and models["models"][0]["heads"][2]["name"] == "information"
    assert 'danmaku_model_info{model="emotion"' in exposition and 'model="information"' not in exposition
