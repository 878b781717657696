"""An async client for any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, ...).

Plain ``httpx`` rather than the ``openai`` package: httpx is already a dependency, and the
labeller needs exactly what the SDK hides or does its own way: the raw ``content`` and
``finish_reason``, its own retry policy, and falling back from ``json_schema`` to ``json_object``
to no ``response_format`` when a server refuses the one it does not support. Servers do that
differently (400, FastAPI's 422, llama-cpp-python's 500), so any of those whose body names the
response format counts.

Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential backoff
and full jitter; what is left after ``max_retries`` is a ``RequestFailed`` for the caller's retry
queue. Errors no retry can fix (401, 403, 404, other 400s) raise ``EndpointError`` at once, and so does
an endpoint still unreachable after every retry (the run stops; the checkpoint keeps its work).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Literal

import httpx

log = logging.getLogger(__name__)

ResponseFormat = Literal["json_schema", "json_object", "none"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = ("json_schema", "json_object", "none")
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# How servers refuse a response_format: 400 (vLLM, OpenAI), 422 (FastAPI validation), and 500
# (llama-cpp-python's server wraps its validation error in a 500 naming the field).
_FORMAT_REJECTION_STATUS = frozenset({400, 422, 500})


class EndpointError(RuntimeError):
    """The endpoint refuses the requests in a way no retry fixes (bad URL, key, model name...)."""


class RequestFailed(RuntimeError):
    """A request still failed after every retry (the batch goes back to the labeller's queue)."""


@dataclass(frozen=True)
class ClientSettings:
    """How to reach the endpoint and how patiently."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    timeout_s: float = 120.0  # per request; a 50-comment answer from an 8B model takes ~10-30 s
    max_retries: int = 4  # transient failures retried per request
    backoff_base_s: float = 1.0  # the n-th retry waits uniform(0, base * 2**n), capped below
    backoff_max_s: float = 30.0
    temperature: float = 0.0
    max_tokens: int = 4096  # 50 items x ~50 tokens, with room
    response_format: ResponseFormat = "json_schema"  # the first one tried

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_base_s < 0:
            raise ValueError("timeout_s must be > 0, max_retries and backoff_base_s >= 0")
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {RESPONSE_FORMATS}, got {self.response_format!r}")


@dataclass(frozen=True)
class ChatReply:
    content: str
    finish_reason: str | None
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def _mentions_response_format(body: str) -> bool:
    lowered = body.lower()
    return any(word in lowered for word in ("response_format", "json_schema", "json_object", "response format"))


class ChatClient:
    """Sends chat completions; counts retries; remembers which ``response_format`` the server accepts."""

    def __init__(self, settings: ClientSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.response_format: ResponseFormat = settings.response_format
        self.retries = 0
        self.format_fallbacks: list[str] = []
        self._rng = rng or random.Random()
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s)),
            # keep-alive connections are reused by concurrent requests; no cap below the caller's concurrency
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _payload(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        if self.response_format == "json_schema":
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "danmaku_labels", "schema": schema, "strict": True},
            }
        elif self.response_format == "json_object":
            payload["response_format"] = {"type": "json_object"}
        return payload

    def _downgrade(self, reason: str) -> bool:
        index = RESPONSE_FORMATS.index(self.response_format)
        if index + 1 >= len(RESPONSE_FORMATS):
            return False
        previous, self.response_format = self.response_format, RESPONSE_FORMATS[index + 1]
        self.format_fallbacks.append(f"{previous} -> {self.response_format}: {reason}")
        log.warning("server rejected response_format %s (%s); using %s", previous, reason, self.response_format)
        return True

    async def _backoff(self, attempt: int) -> None:
        delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
        await asyncio.sleep(self._rng.uniform(0, delay))

    async def complete(self, messages: list[dict[str, str]], *, schema: dict[str, Any]) -> ChatReply:
        """One chat completion, retried on transient failures."""
        attempt = 0
        while True:
            payload = self._payload(messages, schema)
            sent_format = self.response_format
            try:
                response = await self._http.post("chat/completions", json=payload)
            except httpx.TransportError as error:  # connection refused/reset, timeouts
                problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                if isinstance(error, httpx.ConnectError) and attempt >= self.settings.max_retries:
                    # Nothing listens there: every other batch would fail the same way.
                    raise EndpointError(f"cannot reach {self.settings.base_url}: {problem}") from error
            else:
                if response.status_code == 200:
                    return self._reply(response)
                body = response.text[:500]
                # A request in flight may have downgraded already; either way, resend without counting a retry.
                if (
                    response.status_code in _FORMAT_REJECTION_STATUS
                    and sent_format != "none"
                    and _mentions_response_format(body)
                    and (self.response_format != sent_format or self._downgrade(body[:200]))
                ):
                    continue
                if response.status_code not in _RETRYABLE_STATUS:
                    raise EndpointError(f"{response.request.url} answered {response.status_code}: {body}")
                problem = f"HTTP {response.status_code}: {body[:200]}"
            if attempt >= self.settings.max_retries:
                raise RequestFailed(f"{problem} (after {attempt} retries)")
            self.retries += 1
            log.debug("request failed (%s); retry %d", problem, attempt + 1)
            await self._backoff(attempt)
            attempt += 1

    def _reply(self, response: httpx.Response) -> ChatReply:
        try:
            body = response.json()
            choice = body["choices"][0]
            content = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            # A 200 without a chat completion in it: treated like an unparseable answer.
            return ChatReply(content=response.text, finish_reason=None, model=self.settings.model)
        usage = body.get("usage") or {}
        return ChatReply(
            content=content,
            finish_reason=choice.get("finish_reason"),
            model=str(body.get("model") or self.settings.model),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
