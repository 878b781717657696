"""Connection-level limits, below the ASGI app: what a client can hold before a request reaches the service.

uvicorn (with httptools) bounds none of these by itself. ``limited_http_protocol(settings)`` is its HTTP protocol
with four bounds added:

- open connections: past ``max_connections`` a new connection gets 503 and is closed at once, so idle or slow
  clients cannot use up the process's file descriptors;
- a connection that has sent nothing is closed after ``keep_alive_s`` (uvicorn only times out *idle keep-alive*
  connections, i.e. after a first response);
- request headers must arrive within ``header_timeout_s`` of their first byte (408 and close), a slow-headers
  client ("slowloris") holds a connection no longer;
- at most ``max_header_count`` headers and ``max_header_bytes`` bytes of request line and headers (431 and close).

The body's own deadline (``body_timeout_s``) is the guard middleware's, where a 408 can use the error shape.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = message.encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _TooManyHeaders(Exception):
    pass


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of the module docstring; configure with ``configured``."""

    max_connections = 1000
    max_header_count = 100
    max_header_bytes = 32 * 1024
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiving_headers = False
        self._header_bytes = 0
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    @classmethod
    def configured(cls, settings: Settings) -> type[LimitedHttpProtocol]:
        return type(
            "ConfiguredHttpProtocol",
            (cls,),
            {
                "max_connections": settings.max_connections,
                "max_header_count": settings.max_header_count,
                "max_header_bytes": settings.max_header_bytes,
                "header_timeout_s": settings.header_timeout_s,
            },
        )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer with a plain-text error and close: the request never reaches the app (nor its metrics)."""
        if self._refused or self.transport is None or self.transport.is_closing():
            return
        self._refused = True
        self._cancel_header_timer()
        self.logger.warning("refused a connection from %s: %s", self.client, message)
        self.transport.write(_raw_response(status, reason, message))
        self.transport.close()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, "Service Unavailable", f"more than {self.max_connections} open connections")
            return
        # uvicorn's keep-alive timer also covers a connection that never sends a first byte (data cancels it).
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        # Counted after feeding: a chunk that completes the headers (and carries body bytes) is never refused.
        if self._receiving_headers and not self._refused:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large", f"headers over {self.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        if self._header_count > self.max_header_count:
            self._refuse(431, "Request Header Fields Too Large", f"more than {self.max_header_count} headers")
            return
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_header_count:
            raise _TooManyHeaders()  # httptools stops parsing; send_400_response answers 431
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._receiving_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._receiving_headers:
            self._refuse(408, "Request Timeout", f"headers not received within {self.header_timeout_s:g} s")
