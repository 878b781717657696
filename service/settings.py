"""Every knob of the service, settable from the environment (prefix ``DANMAKU_``).

``load_settings()`` reads and validates them once at start-up; a bad value stops the process with
a message naming the environment variable and the value (``SettingsError``). The table in
``docs/serving.md`` lists the same fields; a test keeps the two in step.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "DANMAKU_"
Mode = Literal["precision", "recall"]
ExecutionProvider = Literal["auto", "cpu", "cuda", "tensorrt"]

logger = logging.getLogger(__name__)


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each variable and its bad value."""


class Settings(BaseSettings):
    """Service configuration. Each field is read from ``DANMAKU_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # --- bundles -------------------------------------------------------------------------------
    models_dir: Path = Field(Path("models"), description="Directory holding one sub-directory per model bundle.")
    emotion_bundle: str = Field(
        "emotion", min_length=1, description="Bundle directory (under models_dir) of the emotion model."
    )
    information_bundle: str = Field(
        "information",
        min_length=1,
        description="Bundle directory (under models_dir) of the information model; not needed (and not loaded) "
        "when the emotion bundle carries the information head (a joint bundle).",
    )
    verify_sha256: bool = Field(True, description="Refuse a bundle whose model.onnx does not match its sha256.")

    # --- HTTP ----------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in a container).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the API.")
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics on this separate port (same host) instead of the API port; unset: API port.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="Log level.")
    otlp_endpoint: str | None = Field(
        None,
        pattern=r"^https?://",
        description="OTLP/HTTP endpoint of a trace collector (e.g. http://otel-collector:4318); spans of "
        "POST /classify go to <endpoint>/v1/traces. Unset: no tracing (needs the `tracing` extra).",
    )
    auth_token: SecretStr | None = Field(
        None, description="Bearer token required on POST /classify; unset (and no auth_token_file): no auth."
    )
    auth_token_file: Path | None = Field(
        None, description="File holding the bearer token (e.g. a mounted Kubernetes Secret); read at start-up."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted, checked before JSON parsing (413)."
    )
    max_comments_per_request: int = Field(256, ge=1, description="Most comments in one POST /classify (413).")
    max_text_chars: int = Field(512, ge=1, description="Longest comment text in characters (422).")
    drain_timeout_s: float = Field(
        30.0, gt=0, description="On SIGTERM, longest wait for admitted requests to finish before exiting."
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest time to receive a request's body once its headers are in; a slower upload gets 408 "
        "and its connection is closed (so does one still uploading when a drain starts).",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Longest time from a request's first byte to the end of its headers (408, closed)."
    )
    max_header_count: int = Field(100, ge=10, le=10_000, description="Most headers in one request (431, closed).")
    max_header_bytes: int = Field(
        32_768, ge=4096, description="Largest request line plus headers, in bytes (431, closed)."
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="Most open HTTP connections; one more is answered 503 and closed at once (keep it below the "
        "process's file-descriptor limit, ulimit -n).",
    )
    auth_covers_metadata: bool = Field(
        True,
        description="With a bearer token set, also require it on /v1/models, /docs and /openapi.json; "
        "/healthz, /readyz and /metrics stay open.",
    )
    keep_alive_s: int = Field(
        75,
        ge=1,
        description="Seconds an idle keep-alive connection stays open; keep it above the idle timeout of every "
        "client and proxy in front (a request sent just as the server closes the connection fails).",
    )

    # --- ONNX Runtime --------------------------------------------------------------------------
    execution_provider: ExecutionProvider = Field(
        "auto",
        description="auto: CUDA when onnxruntime offers it, else CPU; cpu; cuda; tensorrt (TensorRT, CUDA, CPU).",
    )
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads inside one operator; 0: its default.")
    inter_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads across operators; 0: its default.")
    warmup_runs: int = Field(2, ge=0, description="Forward passes per batch shape before the service is ready.")

    # --- micro-batching (one batcher per model) ------------------------------------------------
    max_batch_size: int = Field(32, ge=1, le=4096, description="Most comments in one forward pass.")
    max_batch_tokens: int = Field(
        8192, ge=1, description="Most padded tokens (comments x longest) in one forward pass."
    )
    max_padding_ratio: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Largest share of padding tokens in a batch (length bucketing); 1 lets any lengths mix.",
    )
    max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="Longest a comment waits for its batch to fill before it is flushed."
    )
    max_queue_size: int = Field(
        2048, ge=1, description="Comments waiting per model; a request that would exceed it gets 429 at once."
    )

    # --- routing -------------------------------------------------------------------------------
    precision_threshold: float = Field(0.8, ge=0, le=1, description="Information probability needed in mode=precision.")
    recall_threshold: float = Field(0.3, ge=0, le=1, description="Information probability needed in mode=recall.")
    default_mode: Mode = Field("precision", description="Mode of a request that names none.")
    routed_labels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["others", "social"],
        description="Top emotion-model labels whose comments go to the information model (comma-separated).",
    )

    @field_validator("routed_labels", mode="before")
    @classmethod
    def _split_labels(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [label.strip() for label in value.split(",") if label.strip()]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.recall_threshold > self.precision_threshold:
            raise ValueError(
                f"DANMAKU_RECALL_THRESHOLD={self.recall_threshold} is above "
                f"DANMAKU_PRECISION_THRESHOLD={self.precision_threshold}; recall mode must not be stricter"
            )
        if self.max_queue_size < self.max_comments_per_request:
            raise ValueError(
                f"DANMAKU_MAX_QUEUE_SIZE={self.max_queue_size} is below "
                f"DANMAKU_MAX_COMMENTS_PER_REQUEST={self.max_comments_per_request}: a full request could never run"
            )
        if self.auth_token is not None and self.auth_token_file is not None:
            raise ValueError("set DANMAKU_AUTH_TOKEN or DANMAKU_AUTH_TOKEN_FILE, not both")
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError(f"DANMAKU_METRICS_PORT={self.metrics_port} equals DANMAKU_PORT; leave it unset instead")
        return self

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0

    def bundle_dir(self, bundle: str) -> Path:
        return self.models_dir / bundle

    def bearer_token(self) -> str | None:
        """The token /classify requires, or None; reads ``auth_token_file`` (trailing newline stripped)."""
        if self.auth_token is not None:
            token = self.auth_token.get_secret_value()
        elif self.auth_token_file is not None:
            try:
                token = self.auth_token_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"DANMAKU_AUTH_TOKEN_FILE={self.auth_token_file}: cannot read it ({exc})") from exc
        else:
            return None
        if not token.strip():
            raise SettingsError("the bearer token (DANMAKU_AUTH_TOKEN / DANMAKU_AUTH_TOKEN_FILE) is empty")
        return token


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _describe(error: Any) -> str:
    location = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not location:
        return message
    value = error.get("input")
    shown = "<secret>" if location[0] == "auth_token" else repr(value)
    return f"{env_name(location[0])}={shown}: {message}"


def _warn_unknown(environ: dict[str, str]) -> None:
    # Warn, don't fail: Kubernetes injects DANMAKU_SERVICE_HOST and friends for a Service named danmaku.
    known = {env_name(name) for name in Settings.model_fields}
    for key in sorted(environ):
        if key.startswith(ENV_PREFIX) and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            logger.warning("ignoring unknown setting %s%s", key, hint)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, ``overrides`` (e.g. command-line flags) taking precedence."""
    _warn_unknown(dict(os.environ))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(error) for error in exc.errors())
        raise SettingsError(f"invalid settings:\n  {lines}") from None
