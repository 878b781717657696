"""Readiness, admission and graceful shutdown.

On SIGTERM the service stops admitting (new POST /classify get 503 and /readyz turns 503), closes
with 408 the requests whose body is still arriving, waits until every admitted request has been
answered, and only then lets uvicorn close its sockets and run the lifespan shutdown; the drain and
uvicorn's own wait share one deadline, ``drain_timeout_s``. Kubernetes sends SIGTERM when it removes
a pod; the 503s make clients (and the endpoint controller) move to other replicas.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

logger = logging.getLogger(__name__)


class Lifecycle:
    """Shared by the middleware (admission), the health endpoints and the server (drain)."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain_started = asyncio.Event()

    def begin_drain(self) -> None:
        self.draining = True
        self._drain_started.set()

    async def drain_started(self) -> None:
        """Returns once the drain has begun (at once if it has)."""
        await self._drain_started.wait()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once no admitted request is in flight; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        except asyncio.TimeoutError:
            return False
        return True


class DrainingServer(uvicorn.Server):
    """uvicorn, with a drain phase between SIGTERM and its own graceful shutdown.

    A second SIGTERM, or SIGINT, goes straight to uvicorn's shutdown (which still waits for open
    connections, up to its ``timeout_graceful_shutdown``).
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, *, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_timeout_s = drain_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_requested = False
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self._drain_requested and self._loop is not None and not self.should_exit:
            self._drain_requested = True
            # A signal handler may run at any bytecode; hand the work to the event loop.
            self._loop.call_soon_threadsafe(self._begin_drain, sig, frame)
            return
        super().handle_exit(sig, frame)

    def _begin_drain(self, sig: int, frame: FrameType | None) -> None:
        self.lifecycle.begin_drain()
        logger.info("SIGTERM: admitting no new requests; %d in flight", self.lifecycle.in_flight)
        assert self._loop is not None
        self._drain_task = self._loop.create_task(self._drain_then_exit(sig, frame))

    async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        assert self._loop is not None
        deadline = self._loop.time() + self.drain_timeout_s
        if await self.lifecycle.wait_idle(self.drain_timeout_s):
            logger.info("drained: every admitted request answered; shutting down")
        else:
            logger.warning(
                "drain timeout (%.0f s) with %d requests in flight; shutting down",
                self.drain_timeout_s,
                self.lifecycle.in_flight,
            )
        # One budget for the whole shutdown: uvicorn's wait for open connections gets what the drain left
        # (at least 1 s), so SIGTERM -> exit stays within drain_timeout_s + 1 s + the lifespan shutdown.
        self.config.timeout_graceful_shutdown = max(1.0, deadline - self._loop.time())  # type: ignore[assignment]
        super().handle_exit(sig, frame)
