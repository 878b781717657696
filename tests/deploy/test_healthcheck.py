"""deploy/docker/healthcheck.py (the image's HEALTHCHECK) against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.deploy.conftest import load_module


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    return load_module("deploy/docker/healthcheck.py")


def test_healthy_on_200(healthcheck: ModuleType, server: str) -> None:
    assert healthcheck.check(f"{server}/healthz", 2.0) == (True, f"{server}/healthz answered 200")


def test_unhealthy_on_error_status(healthcheck: ModuleType, server: str) -> None:
    healthy, reason = healthcheck.check(f"{server}/readyz", 2.0)
    assert not healthy and "503" in reason


def test_unhealthy_when_nothing_listens(healthcheck: ModuleType) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    healthy, reason = healthcheck.check(f"http://127.0.0.1:{port}/healthz", 2.0)
    assert not healthy and "unreachable" in reason


def test_main_exit_code_follows_the_url(healthcheck: ModuleType, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANMAKU_HEALTHCHECK_URL", f"{server}/healthz")
    assert healthcheck.main() == 0
    monkeypatch.setenv("DANMAKU_HEALTHCHECK_URL", f"{server}/missing")
    assert healthcheck.main() == 1
