"""A real danmaku-serve (uvicorn, 127.0.0.1) with the tiny bundles, for the load-test tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.serving import free_port

GUARD_S = 180


@dataclass(frozen=True)
class Server:
    base: str
    token_file: Path
    pid: int


@contextmanager
def running_server(models_dir: Path, tmp_path: Path, **environment: str) -> Iterator[Server]:
    """danmaku-serve on a free port with the given bundles, a bearer token and ``environment`` (DANMAKU_*)."""
    port = free_port()
    token = tmp_path / "token"
    token.write_text("load-test-token\n", encoding="utf-8")
    env = {**os.environ, "DANMAKU_WARMUP_RUNS": "0", "DANMAKU_AUTH_TOKEN_FILE": str(token), **environment}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "--port", str(port), "--models-dir", str(models_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + GUARD_S
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the service did not become ready"
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield Server(base, token, process.pid)
    finally:
        process.terminate()
        process.wait(60)


@pytest.fixture
def server(tiny_models_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """danmaku-serve on a free port with the tiny bundles, a bearer token and a small queue."""
    with running_server(
        tiny_models_dir,
        tmp_path,
        DANMAKU_MAX_COMMENTS_PER_REQUEST="64",
        DANMAKU_MAX_QUEUE_SIZE="96",  # bursts of 8 users x up to 64 comments overflow it: 429s happen
    ) as running:
        yield running
