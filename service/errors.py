"""One error hierarchy, ONE status table and ONE function that turns any exception into a response.

Every error body has the shape ``{"error": {"code", "message", "details"}}`` (``ErrorResponse``).
Request-validation errors name the offending field with its index (``comments[3].text``).
Anything not in the table becomes a generic 500 whose body says nothing about the cause.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from service.schemas import ErrorBody, ErrorDetail, ErrorResponse


class ServiceError(Exception):
    """Base of every error the service answers on purpose; ``code`` is stable, for clients and metrics."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        details: Sequence[ErrorDetail] = (),
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


class InvalidJson(ServiceError):
    code = "invalid_json"


class InvalidRequest(ServiceError):
    code = "invalid_request"


class Unauthorized(ServiceError):
    code = "unauthorized"

    def __init__(self) -> None:
        # One message whatever failed (no header, wrong scheme, wrong token): nothing to probe.
        super().__init__("missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


class BodyTooLarge(ServiceError):
    code = "body_too_large"


class TooManyComments(ServiceError):
    code = "too_many_comments"


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"


class RequestTimeout(ServiceError):
    """The body did not arrive in time (or the service began to drain while it was arriving); the connection is
    closed, so a client that is still sending learns it at once."""

    code = "request_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class Overloaded(ServiceError):
    """A model's queue is full; the client should retry after ``retry_after_s`` seconds."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after_s = seconds


class NotReady(ServiceError):
    code = "not_ready"


class ShuttingDown(ServiceError):
    code = "shutting_down"

    def __init__(self) -> None:
        # Connection: close sends the client's next attempt to a new connection (another replica).
        super().__init__("the service is shutting down; retry on another replica", headers={"Connection": "close"})


class ClientClosedRequest(ServiceError):
    """The client went away before its answer was ready; nobody reads this response."""

    code = "client_closed_request"


# THE status table. Order matters only for subclasses (first match wins).
STATUS: tuple[tuple[type[ServiceError], int], ...] = (
    (InvalidJson, 400),
    (Unauthorized, 401),
    (RequestTimeout, 408),
    (BodyTooLarge, 413),
    (TooManyComments, 413),
    (UnsupportedMediaType, 415),
    (InvalidRequest, 422),
    (Overloaded, 429),
    (ClientClosedRequest, 499),
    (NotReady, 503),
    (ShuttingDown, 503),
)

# A 422 lists at most this many problems (the message gives the total): a body of many bad items must not be
# answered with a response many times its size.
MAX_ERROR_DETAILS = 20

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def status_of(error: ServiceError) -> int:
    for error_type, status in STATUS:
        if isinstance(error, error_type):
            return status
    return 500


def field_path(location: Sequence[Any]) -> str:
    """``("body", "comments", 3, "text")`` -> ``comments[3].text``."""
    parts = list(location)
    if parts and parts[0] == "body":
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "<body>"


def _problem(error: Any) -> str:
    if error.get("type") == "string_pattern_mismatch" and tuple(error.get("loc", ()))[-1:] == ("text",):
        return "empty: a text needs at least one non-space character"
    return str(error.get("msg", ""))


def from_validation_error(exc: RequestValidationError) -> ServiceError:
    errors = list(exc.errors())
    invalid_json = [error for error in errors if error.get("type") == "json_invalid"]
    if invalid_json:
        error = invalid_json[0]
        position = error["loc"][-1] if error.get("loc") else "?"
        reason = str((error.get("ctx") or {}).get("error", "malformed"))
        # pydantic's reason may already end in "at line L column C"; don't say "at" twice.
        where = "" if " at line " in reason else f" at character {position}"
        return InvalidJson(
            f"request body is not valid JSON: {reason}{where}",
            details=[ErrorDetail(field="<body>", problem=f"{reason}{where}")],
        )
    details = [
        ErrorDetail(field=field_path(error.get("loc", ())), problem=_problem(error))
        for error in errors[:MAX_ERROR_DETAILS]
    ]
    summary = "; ".join(f"{detail.field}: {detail.problem}" for detail in details[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    if len(errors) > MAX_ERROR_DETAILS:
        details.append(
            ErrorDetail(field="<body>", problem=f"{len(errors) - MAX_ERROR_DETAILS} more problems not listed")
        )
    return InvalidRequest(f"invalid request: {summary}{more}", details=details)


def to_error(exc: BaseException) -> tuple[int, ServiceError]:
    """Map any exception onto (status, a ServiceError safe to show the client)."""
    if isinstance(exc, ServiceError):
        return status_of(exc), exc
    if isinstance(exc, RequestValidationError):
        error = from_validation_error(exc)
        return status_of(error), error
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return exc.status_code, ServiceError(str(exc.detail), headers=dict(exc.headers or {}), code=code)
    # Logged by the server (Starlette re-raises it after this response); the client learns nothing.
    return 500, ServiceError("internal server error", code="internal_error")


def render(status: int, error: ServiceError) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=error.code, message=error.message, details=error.details))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=error.headers or None)


def error_response(exc: BaseException) -> JSONResponse:
    """THE handler: every error response of the service is built here."""
    return render(*to_error(exc))
