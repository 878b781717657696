"""Pure ASGI middleware: request metrics, and the guard in front of POST /classify.

The guard runs before any JSON parsing, in this order: shutting down (503) -> bearer token
(401) -> body size (413, from Content-Length when sent, else counted while streaming). Only then is
the request admitted (counted in flight, which graceful shutdown waits for) and its buffered body
handed to the application. The body must arrive within ``body_timeout_s``, and a body still arriving
when the drain starts is not waited for: both get 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Collection
from typing import TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    BodyTooLarge,
    ClientClosedRequest,
    RequestTimeout,
    ServiceError,
    ShuttingDown,
    Unauthorized,
    error_response,
)
from service.lifecycle import Lifecycle
from service.metrics import Metrics

T = TypeVar("T")


class RequestMetricsMiddleware:
    """Counts every HTTP request by route (path; unknown paths are 'other') and status, and times it.

    The label is ``route``, not ``endpoint``: the Prometheus Operator adds ``endpoint`` (the port name) to every
    scraped series, and the two would collide.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self.routes else "other"
        status: int | None = None
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            failed = True
            raise
        finally:
            # No response started: 500 if the app raised, else 499 (the client left first).
            code = status if status is not None else (500 if failed else 499)
            self.metrics.requests.labels(route, str(code)).inc()
            self.metrics.request_duration.labels(route).observe(time.perf_counter() - started)


class GuardMiddleware:
    """Drain / auth / body-size checks, then admission, for the ``protected`` paths."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifecycle: Lifecycle,
        metrics: Metrics,
        max_body_bytes: int,
        bearer_token: str | None,
        protected: Collection[str],
        authenticated: Collection[str] | None = None,
        body_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._token = bearer_token.encode("utf-8") if bearer_token is not None else None
        self.protected = frozenset(protected)
        # Paths that need the token: the protected ones, plus any only read (metadata, docs).
        self.authenticated = self.protected | frozenset(authenticated or ())
        self.body_timeout_s = body_timeout_s

    async def _reject(self, error: ServiceError, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.rejections.labels(error.code).inc()
        await error_response(error)(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        if self._token is None:
            return True
        values = [value for name, value in scope["headers"] if name == b"authorization"]
        if len(values) > 1:
            return False  # which one a proxy or the app would read differs: refuse rather than guess
        header = values[0] if values else b""
        scheme, _, token = header.partition(b" ")
        # compare_digest on every path (also a wrong scheme) so timing says nothing about the token.
        matches = hmac.compare_digest(token.strip(), self._token)
        return matches and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guarded = scope["path"] in self.protected
        if guarded and self.lifecycle.draining:
            await self._reject(ShuttingDown(), scope, receive, send)
            return
        if scope["path"] in self.authenticated and not self._authorised(scope):
            await self._reject(Unauthorized(), scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(self._too_large(int(declared)), scope, receive, send)
            return
        if guarded:
            self.lifecycle.enter()
            self.metrics.in_flight.inc()
        try:
            body = bytearray()
            deadline = None if self.body_timeout_s is None else asyncio.get_running_loop().time() + self.body_timeout_s
            while True:
                message = await self._receive_body(receive, deadline)
                if isinstance(message, RequestTimeout):
                    await self._reject(message, scope, receive, send)
                    return
                if message["type"] == "http.disconnect":
                    return  # the client left while sending; nobody to answer
                body.extend(message.get("body", b""))
                if len(body) > self.max_body_bytes:
                    await self._reject(self._too_large(None), scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
            await self.app(scope, _replay(bytes(body), receive), send)
        finally:
            if guarded:
                self.lifecycle.leave()
                self.metrics.in_flight.dec()

    async def _receive_body(self, receive: Receive, deadline: float | None) -> Message | RequestTimeout:
        """The next message of the body, or the 408 to answer when the deadline passed or a drain began first.

        A message already buffered by the server is returned even when draining: only a body that is still
        in transit is not waited for.
        """
        pending = asyncio.ensure_future(receive())
        drain = asyncio.ensure_future(self.lifecycle.drain_started())
        timeout = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            await asyncio.wait({pending, drain}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drain.cancel()
        if pending.done():
            return pending.result()
        pending.cancel()
        if self.lifecycle.draining:
            return RequestTimeout("the service began shutting down before the request body arrived; retry")
        return RequestTimeout(f"the request body did not arrive within {self.body_timeout_s:g} s")

    def _too_large(self, declared: int | None) -> BodyTooLarge:
        size = f"{declared} bytes" if declared is not None else "more"
        return BodyTooLarge(
            f"request body is {size}; the limit is {self.max_body_bytes} bytes (DANMAKU_MAX_BODY_BYTES)"
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the buffered body once, then defers to the client's (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it (its queued comments are then skipped)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task.done():
        watcher.cancel()
        return task.result()
    task.cancel()
    raise ClientClosedRequest("the client closed the connection before the answer was ready")
