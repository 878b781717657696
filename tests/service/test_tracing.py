"""Tracing (service/tracing.py): the span tree of one request with the in-memory exporter, the batch span and its
links, errors, OTLP/HTTP export to a local collector stand-in, and the service without the tracing extra."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from service import tracing
from service.settings import Settings
from service.taxonomy import MAIN_LABELS
from tests.fixtures.serving import serving

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra (opentelemetry-sdk) is not installed")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

CALLER_TRACE = 0xABABABABABABABABABABABABABABABAB
CALLER_SPAN = 0xCDCDCDCDCDCDCDCD
TRACEPARENT = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


def settings(models_dir: Path, **overrides: Any) -> Settings:
    # Every top label routed: the information model runs whatever the random tiny emotion model says; any lengths
    # mix, so a request's comments ride one batch per model.
    return Settings(
        models_dir=models_dir, warmup_runs=0, routed_labels=list(MAIN_LABELS), max_padding_ratio=1.0, **overrides
    )


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [span for span in spans if span.parent is not None and span.parent.span_id == parent.context.span_id]


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [span.name for span in spans])
    return found[0]


async def test_one_request_has_its_span_tree_and_its_batches_linked(
    tiny_models_dir: Path, exporter: InMemorySpanExporter
) -> None:
    texts = ["前方高能！！", "这首歌是周杰伦的晴天", "哈哈哈"]
    comments = [{"id": str(i), "text": text} for i, text in enumerate(texts)]
    async with serving(settings(tiny_models_dir)) as (_, client):
        response = await client.post("/classify", json={"comments": comments}, headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200, response.text
        await client.get("/readyz")  # not traced: only POST /classify is
    spans = list(exporter.get_finished_spans())

    request = only(spans, "POST /classify")
    assert request.kind == SpanKind.SERVER
    assert request.context is not None and request.context.trace_id == CALLER_TRACE  # continues the caller's trace
    assert request.parent is not None and request.parent.span_id == CALLER_SPAN
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["danmaku.comments"] == 3 and request.attributes["danmaku.routed"] == 3
    assert sorted(span.name for span in children(spans, request)) == ["route", "validate"]

    route = only(spans, "route")
    assert sorted(span.name for span in children(spans, route)) == sorted(
        f"{step} {model}" for step in ("tokenise", "queue_wait", "inference") for model in ("emotion", "information")
    )
    for model in ("emotion", "information"):
        tokenise, wait, inference = (only(spans, f"{step} {model}") for step in ("tokenise", "queue_wait", "inference"))
        assert tokenise.end_time is not None and wait.start_time is not None and wait.end_time is not None
        assert tokenise.end_time <= wait.start_time + 1_000_000  # queued right after tokenising (1 ms: clock skew)
        assert wait.end_time == inference.start_time  # the batch started when the wait ended
        batch = only(spans, f"batch {model}")
        assert batch.parent is None and batch.context is not None
        assert batch.context.trace_id != CALLER_TRACE  # a batch is a trace of its own...
        assert [link.context.span_id for link in batch.links] == [route.context.span_id]  # ...linked to the request
        assert [link.context.span_id for link in inference.links] == [batch.context.span_id]
        assert batch.attributes is not None and batch.attributes["danmaku.batch.comments"] == 3
    assert {span.context.trace_id for span in spans if not span.name.startswith("batch ")} == {CALLER_TRACE}


async def test_a_failed_batch_marks_its_spans_as_errors(tiny_models_dir: Path, exporter: InMemorySpanExporter) -> None:
    async with serving(settings(tiny_models_dir)) as (app, client):
        runtime = app.state.service.runtime
        batcher = runtime.router.emotion.batcher

        def broken(items: list[Any]) -> list[Any]:
            raise RuntimeError("boom")

        batcher._infer = broken
        response = await client.post("/classify", json={"comments": [{"id": "1", "text": "哈哈"}]})
        assert response.status_code == 500
    spans = list(exporter.get_finished_spans())
    assert only(spans, "batch emotion").status.status_code == StatusCode.ERROR
    assert only(spans, "inference emotion").status.status_code == StatusCode.ERROR
    assert only(spans, "POST /classify").status.status_code == StatusCode.ERROR


class Collector(BaseHTTPRequestHandler):
    """Stands in for an OpenTelemetry collector's OTLP/HTTP receiver: keeps what is posted."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_danmaku_otlp_endpoint_exports_over_otlp_http(tiny_models_dir: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    Collector.received = []
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    try:
        async with serving(settings(tiny_models_dir, otlp_endpoint=endpoint + "/")) as (_, client):
            assert tracing.enabled()
            response = await client.post("/classify", json={"comments": [{"id": "1", "text": "前方高能"}]})
            assert response.status_code == 200
        tracing.shutdown()  # flushes the batching processor
    finally:
        tracing.shutdown()
        collector.shutdown()
    assert not tracing.enabled()
    assert Collector.received, "nothing was exported"
    names = set()
    for path, content_type, body in Collector.received:
        assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            attributes = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
            assert attributes["service.name"] == "danmaku-classifier"
            names |= {span.name for scope in resource_spans.scope_spans for span in scope.spans}
    assert {"POST /classify", "validate", "route", "queue_wait emotion", "batch emotion"} <= names


# Run where the tracing extra is missing: no OpenTelemetry SDK, no exporter (recent FastAPI brings the API itself).
WITHOUT_OPENTELEMETRY = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from service import tracing
from service.app import create_app
from service.settings import Settings

create_app(Settings())
assert not tracing.enabled() and tracing.current_context() is None
with tracing.span("validate"):
    pass
tracing.batch_started("emotion", [None], [0.0], 0.0, padded_tokens=1).finished(failed=False)
try:
    tracing.configure("http://127.0.0.1:4318", service_version="0")
except RuntimeError as error:
    print(error)
"""


def test_tracing_is_off_by_default_and_the_service_runs_without_the_extra() -> None:
    assert Settings().otlp_endpoint is None
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENTELEMETRY], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DANMAKU_OTLP_ENDPOINT=http://127.0.0.1:4318: tracing needs the `tracing` extra" in result.stdout


def test_a_bad_endpoint_is_refused_with_its_variable() -> None:
    from service.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="DANMAKU_OTLP_ENDPOINT"):
        load_settings(otlp_endpoint="otel-collector:4318")
