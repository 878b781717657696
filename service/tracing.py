"""OpenTelemetry traces of POST /classify: off unless ``DANMAKU_OTLP_ENDPOINT`` is set.

The spans of one request (names carry the model)::

    POST /classify                SERVER; continues the caller's trace when it sends a W3C traceparent header
      validate                    the configurable limits (JSON and schema checks ran just before it)
      route                       the hierarchy: emotion model on every comment, information model on the routed ones
        tokenise emotion
        queue_wait emotion        from queueing to the start of the forward pass the comments rode in
        inference emotion         that forward pass, seen from this request; linked to its batch span
        tokenise information      (only when a comment was routed)
        queue_wait information
        inference information
    batch emotion                 one per forward pass, a trace of its own, linked to the route span of every
                                  request that has comments in it

Spans are exported over OTLP/HTTP (protobuf) to ``<endpoint>/v1/traces`` by a batching processor; the standard
``OTEL_*`` variables (headers, sampler, resource attributes) apply. With tracing off every hook is a no-op that
imports nothing; the SDK and the exporter are the optional ``tracing`` extra.

The tracer provider is this module's, never the global one: FastAPI's own telemetry (FastAPI >= 0.165 traces every
route once a global provider is set) stays off, so a request is not traced twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

T = TypeVar("T")
SERVICE_NAME = "danmaku-classifier"
INSTALL_HINT = "tracing needs the `tracing` extra: pip install 'danmaku-classifier[tracing]'"

_tracer: Tracer | None = None
_exporting: Any = None  # the SDK TracerProvider that configure() made, for shutdown()


def configure(endpoint: str | None, *, service_version: str) -> None:
    """Export spans to the OTLP/HTTP collector at ``endpoint``; None leaves tracing off."""
    if endpoint is None:
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(f"DANMAKU_OTLP_ENDPOINT={endpoint}: {INSTALL_HINT}") from exc
    resource = Resource.create({"service.name": SERVICE_NAME, "service.version": service_version})
    provider = SdkTracerProvider(resource=resource)  # exported and shut down (flushed) at exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    shutdown()
    install(provider)
    global _exporting
    _exporting = provider


def shutdown() -> None:
    """Export what is buffered and turn tracing off (also done at interpreter exit)."""
    global _exporting
    if _exporting is not None:
        _exporting.shutdown()
        _exporting = None
    install(None)


def install(provider: TracerProvider | None) -> None:
    """Trace through ``provider`` (tests pass one with an in-memory exporter); None turns tracing off."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer(SERVICE_NAME)


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A child span of the current one around the block (nothing when tracing is off)."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield


async def traced(name: str, work: Awaitable[T], **attributes: Any) -> T:
    """Await ``work`` inside a span (the coroutine body runs in this task, so its own spans become children)."""
    with span(name, **attributes):
        return await work


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span, if tracing."""
    if _tracer is not None:
        from opentelemetry import trace

        trace.get_current_span().set_attributes(attributes)


def current_context() -> object | None:
    """The caller's trace context, captured when it queues a comment (None when tracing is off)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


class BatchTrace:
    """The spans of one forward pass: its batch span and, per request in it, its queue wait and inference spans."""

    def __init__(self, spans: Sequence[Span] = ()) -> None:
        self._spans = spans

    def finished(self, *, failed: bool) -> None:
        if not self._spans:
            return
        from opentelemetry.trace import Status, StatusCode

        end = time.time_ns()
        for each in self._spans:
            if failed:
                each.set_status(Status(StatusCode.ERROR, "the forward pass raised"))
            each.end(end_time=end)


_UNTRACED = BatchTrace()


def batch_started(
    model: str, contexts: Sequence[object | None], enqueued_at: Sequence[float], started: float, *, padded_tokens: int
) -> BatchTrace:
    """Open the spans of a forward pass that started at ``started`` (monotonic clock), one entry per comment.

    Comments of one request share its context: it gets one queue_wait span (from its first comment queued) and one
    inference span.
    """
    if _tracer is None or not any(context is not None for context in contexts):
        return _UNTRACED
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, get_current_span

    wall_now, monotonic_now = time.time_ns(), time.monotonic()

    def wall(monotonic: float) -> int:
        return wall_now - int((monotonic_now - monotonic) * 1e9)

    start = wall(started)
    first_queued: dict[int, tuple[Any, float]] = {}
    for context, queued in zip(contexts, enqueued_at, strict=True):
        if context is not None:
            known = first_queued.get(id(context))
            first_queued[id(context)] = (context, queued if known is None else min(known[1], queued))
    links = [Link(get_current_span(context).get_span_context()) for context, _ in first_queued.values()]
    batch = _tracer.start_span(
        f"batch {model}",
        context=Context(),  # a root: a batch belongs to no single request
        links=links,
        start_time=start,
        attributes={
            "danmaku.model": model,
            "danmaku.batch.comments": len(contexts),
            "danmaku.batch.requests": len(first_queued),
            "danmaku.batch.padded_tokens": padded_tokens,
        },
    )
    spans = [batch]
    for context, queued in first_queued.values():
        _tracer.start_span(f"queue_wait {model}", context=context, start_time=wall(queued)).end(end_time=start)
        spans.append(
            _tracer.start_span(
                f"inference {model}",
                context=context,
                start_time=start,
                links=[Link(batch.get_span_context())],
                attributes={"danmaku.model": model, "danmaku.batch.comments": len(contexts)},
            )
        )
    return BatchTrace(spans)


class TracingMiddleware:
    """The SERVER span of each request to ``paths`` (only while tracing is on)."""

    def __init__(self, app: ASGIApp, *, paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _tracer is None or scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        method, path = scope["method"], scope["path"]
        with _tracer.start_as_current_span(
            f"{method} {path}",
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "http.route": path},
        ) as request_span:

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    request_span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        request_span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_status)
