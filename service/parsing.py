"""The body of POST /classify, from bytes to ``ClassifyRequest``: cheap checks first, then pydantic.

Order, cheapest first, so that no body makes the service do work in proportion to what it will refuse:
Content-Type (415) -> UTF-8 and JSON syntax, with a position (400 ``invalid_json``) -> the body's shape and the
number of comments (422 / 413, before any item is validated) -> per-field validation by pydantic (422, at most
``MAX_ERROR_DETAILS`` details). A body over ``OFFLOAD_BYTES`` is parsed in a worker thread so that the event loop
(and with it /healthz) keeps answering while it is parsed.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from service.errors import InvalidJson, InvalidRequest, TooManyComments, UnsupportedMediaType
from service.schemas import ClassifyRequest, ErrorDetail

# Bodies larger than this are parsed off the event loop; smaller ones cost less than the thread hand-off.
OFFLOAD_BYTES = 32 * 1024
# Python refuses to convert integers with more digits than this (CVE-2020-10735); json.loads raises ValueError.
_MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300
_LONG_NUMBER = re.compile(rf"\d{{{_MAX_INT_DIGITS + 1},}}")


def check_content_type(content_type: str | None) -> None:
    """JSON only: ``application/json`` or any ``+json`` type; a request without the header is read as JSON."""
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported; send the body as JSON with Content-Type: application/json"
    )


def _invalid_json(problem: str, *, position: int, text: str | None = None) -> InvalidJson:
    where = f"character {position}"
    if text is not None:
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        where = f"line {line} column {column} (character {position})"
    return InvalidJson(
        f"request body is not valid JSON: {problem} at {where}",
        details=[ErrorDetail(field="<body>", problem=f"{problem} at {where}")],
    )


def _nesting_position(text: str, limit: int) -> int:
    """Where the nesting depth first passes ``limit`` (strings skipped); only called on the error path."""
    depth, in_string, escaped = 0, False, False
    for position, character in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > limit:
                return position
        elif character in "]}":
            depth -= 1
    return len(text)


class TooManyObjects(Exception):
    """The body holds more JSON objects than ``parse_json`` was allowed to build."""


def _counting_decoder(max_objects: int | None) -> json.JSONDecoder:
    """A decoder that stops as soon as it has built more than ``max_objects`` objects (None: no bound)."""
    if max_objects is None:
        return json.JSONDecoder()
    built = 0

    def count(obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal built
        built += 1
        if built > max_objects:
            raise TooManyObjects()
        return obj

    return json.JSONDecoder(object_hook=count)


def parse_json(body: bytes, *, max_objects: int | None = None) -> Any:
    """The JSON document of ``body``; ``InvalidJson`` with the position of the first problem otherwise.

    ``max_objects`` bounds the JSON objects built: past it, parsing stops (``TooManyObjects``), so a body of
    200,000 tiny objects costs what the allowed number costs, not 200,000 dictionaries (the GIL is held meanwhile).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_json(f"invalid UTF-8 byte 0x{body[exc.start]:02x}", position=exc.start) from None
    try:
        return _counting_decoder(max_objects).decode(text)
    except json.JSONDecodeError as exc:
        # json's own messages may end in "at" ("Invalid control character at"): the position follows anyway.
        raise _invalid_json(exc.msg.removesuffix(" at"), position=exc.pos, text=text) from None
    except RecursionError:
        limit = sys.getrecursionlimit() // 2
        problem = "arrays and objects nested too deeply"
        raise _invalid_json(problem, position=_nesting_position(text, limit), text=text) from None
    except ValueError as exc:
        # The only other ValueError of json.loads: an integer over Python's digit limit. json gives no position.
        long_number = _LONG_NUMBER.search(text)
        problem = f"a number with more than {_MAX_INT_DIGITS} digits"
        raise _invalid_json(problem, position=long_number.start() if long_number else 0, text=text) from exc


def check_shape(document: Any, max_comments: int) -> None:
    """The checks that cost nothing per item: a JSON object, and no more comments than allowed (413)."""
    if not isinstance(document, dict):
        raise InvalidRequest(
            f"invalid request: <body>: expected a JSON object, got {type(document).__name__}",
            details=[ErrorDetail(field="<body>", problem="expected a JSON object with a 'comments' list")],
        )
    comments = document.get("comments")
    if isinstance(comments, list) and len(comments) > max_comments:
        count = len(comments)
        raise TooManyComments(
            f"{count} comments in one request; the limit is {max_comments} (DANMAKU_MAX_COMMENTS_PER_REQUEST)",
            details=[ErrorDetail(field="comments", problem=f"{count} items, at most {max_comments}")],
        )


def parse_classify_request(body: bytes, *, max_comments: int) -> ClassifyRequest:
    """Bytes -> a validated request, in the order described in the module docstring (Content-Type aside)."""
    # One object per comment and the body itself; twice that leaves room, and is still cheap.
    max_objects = 2 * (max_comments + 1)
    try:
        document = parse_json(body, max_objects=max_objects)
    except TooManyObjects:
        raise TooManyComments(
            f"the body holds more than {max_objects} JSON objects; a request carries at most {max_comments} "
            "comments (DANMAKU_MAX_COMMENTS_PER_REQUEST) of one object each",
            details=[ErrorDetail(field="comments", problem=f"more than {max_comments} items")],
        ) from None
    check_shape(document, max_comments)
    try:
        return ClassifyRequest.model_validate(document)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def classify_request(request: Request) -> ClassifyRequest:
    """FastAPI dependency: the parsed body of POST /classify (the guard middleware has already bounded its size)."""
    check_content_type(request.headers.get("content-type"))
    body = await request.body()
    max_comments: int = request.app.state.service.settings.max_comments_per_request
    if len(body) > OFFLOAD_BYTES:
        return await asyncio.to_thread(parse_classify_request, body, max_comments=max_comments)
    return parse_classify_request(body, max_comments=max_comments)
