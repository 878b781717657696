"""Connection-level limits (service/limits.py, issue 9) on a real uvicorn with the service's HTTP protocol.

The app behind it is the guard middleware in front of an echo app: what matters here is what happens before a
request reaches the service (headers, connections) and to a body that does not arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from service.lifecycle import Lifecycle
from service.limits import LimitedHttpProtocol
from service.metrics import Metrics
from service.middleware import GuardMiddleware
from service.settings import Settings
from tests.fixtures.serving import free_port

GUARD_S = 10.0


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    answer = str(len(body)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def port() -> Iterator[int]:
    settings = Settings(
        max_connections=4, max_header_count=20, max_header_bytes=8192, header_timeout_s=0.5, keep_alive_s=2
    )
    app = GuardMiddleware(
        echo,
        lifecycle=Lifecycle(),
        metrics=Metrics(),
        max_body_bytes=2_000_000,
        bearer_token=None,
        protected=("/classify",),
        body_timeout_s=0.5,
    )
    number = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=number,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=settings.keep_alive_s,
        http=LimitedHttpProtocol.configured(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + GUARD_S
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield number
    server.should_exit = True
    thread.join(GUARD_S)


def exchange(port: int, data: bytes, *, pause_s: float = 0.0) -> bytes:
    """Send ``data`` (then wait ``pause_s``), read until the server closes or GUARD_S passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as sock:
        with contextlib.suppress(OSError):  # the server may close while a huge request is still being sent
            sock.sendall(data)
        time.sleep(pause_s)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def request(headers: str = "", body: bytes = b"") -> bytes:
    return (
        f"POST /classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


def test_an_ordinary_large_request_passes(port: int) -> None:
    body = b"x" * 1_500_000  # arrives in many reads together with the headers: never mistaken for big headers
    assert exchange(port, request("X-A: b\r\n", body)).endswith(b"\r\n\r\n1500000")


def test_too_many_headers_are_431_and_closed(port: int) -> None:
    headers = "".join(f"X-{n}: {n}\r\n" for n in range(10_000))
    answer = exchange(port, request(headers))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"more than 20 headers" in answer


def test_a_huge_header_value_is_431_and_closed(port: int) -> None:
    started = time.perf_counter()
    answer = exchange(port, request("X-Big: " + "a" * 4_000_000 + "\r\n"))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"headers over 8192 bytes" in answer
    assert time.perf_counter() - started < 5.0


def test_slow_headers_are_408_and_closed(port: int) -> None:
    started = time.perf_counter()
    answer = exchange(port, b"POST /classify HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert 0.4 < time.perf_counter() - started < 5.0


def test_a_slow_body_is_408_and_closed(port: int) -> None:
    started = time.perf_counter()
    answer = exchange(port, b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in answer.lower() and b"request_timeout" in answer
    assert 0.4 < time.perf_counter() - started < 5.0


def test_connections_past_the_limit_are_503_and_closed(port: int) -> None:
    held = [socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) for _ in range(4)]
    try:
        time.sleep(0.2)
        answer = exchange(port, request())
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert b"more than 4 open connections" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert exchange(port, request(body=b"ok")).endswith(b"\r\n\r\n2")


def test_a_connection_that_sends_nothing_is_closed_after_the_keep_alive(port: int) -> None:
    started = time.perf_counter()
    assert exchange(port, b"") == b""
    assert 1.5 < time.perf_counter() - started < 6.0


def test_keep_alive_requests_each_get_a_fresh_header_deadline(port: int) -> None:
    keep = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"

    async def talk() -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for _ in range(3):
            writer.write(keep)
            await writer.drain()
            answers.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n2"), GUARD_S))
            await asyncio.sleep(0.3)  # idle between requests: the keep-alive timeout, not the header one
        writer.close()
        return answers

    answers = asyncio.run(talk())
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)
