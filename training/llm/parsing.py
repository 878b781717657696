"""Reading an LLM's answer: cleaning, tolerant JSON parsing, and keeping only complete items.

An answer should be ``{"comments": [{"comment_id", "labels", "subcategories", "rationale"}, ...]}``.
What comes back in practice, and what happens to it:

- the prompt echoed before the answer: cut up to the end of the echoed prompt;
- code fences or prose around the JSON: every JSON value in the text is found with the standard
  library's decoder (``raw_decode`` at each ``{``/``[``), so surrounding text does not matter;
- truncated JSON (``finish_reason == "length"``): the envelope fails to decode but each complete
  item object still does, and a torn last item never does, so exactly the complete items are kept;
- malformed but complete JSON (single quotes, trailing commas, missing commas, Python literals),
  typical of small models: repaired with ``json-repair``. It is NOT used to decide completeness:
  on a torn item it invents the rest (``"labels": ["soc`` becomes ``["soc"]``), so on a truncated
  answer its last item is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```[A-Za-z0-9_-]*")
_VALUE_START = re.compile(r"[\[{]")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class AnswerItem:
    """One comment's answer as the model wrote it (labels not yet normalised)."""

    comment_id: str
    labels: tuple[str, ...]
    subcategories: tuple[str, ...]
    rationale: str


@dataclass(frozen=True)
class ParsedAnswer:
    """The complete items found in an answer, and what was wrong with it (None when nothing)."""

    items: tuple[AnswerItem, ...]
    problem: str | None = None
    repaired: bool = False


def clean_response(text: str, prompt_parts: Sequence[str] = ()) -> str:
    """Strip an echoed prompt and code fences; what remains still may carry prose around the JSON."""
    cut = 0
    for part in prompt_parts:
        part = part.strip()
        if part:
            position = text.rfind(part)
            if position >= 0:
                cut = max(cut, position + len(part))
    return _FENCE.sub(" ", text[cut:]).strip()


def _string_list(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, (list, tuple)) and all(isinstance(entry, str) for entry in value):
        return tuple(entry for entry in value if entry.strip())
    return None


def item_from(value: object) -> AnswerItem | None:
    """An ``AnswerItem`` if ``value`` is an object with an id and a list of labels, else None."""
    if not isinstance(value, dict):
        return None
    identifier = value.get("comment_id", value.get("id"))
    if isinstance(identifier, bool) or not isinstance(identifier, (str, int)):
        return None
    labels = _string_list(value.get("labels", value.get("label")))
    if labels is None:
        return None
    subcategories = _string_list(value.get("subcategories", value.get("subcategory", ()))) or ()
    rationale = value.get("rationale", value.get("reason", ""))
    return AnswerItem(
        comment_id=str(identifier).strip(),
        labels=labels,
        subcategories=subcategories,
        rationale=rationale.strip() if isinstance(rationale, str) else "",
    )


def _items_in(value: object) -> Iterator[AnswerItem]:
    """Items of an answer document, a bare list of items, or a single item."""
    if isinstance(value, dict):
        single = item_from(value)
        if single is not None:
            yield single
            return
        for key in ("comments", "results", "items", "labels", "data"):
            if isinstance(value.get(key), list):
                yield from _items_in(value[key])
                return
    elif isinstance(value, list):
        for entry in value:
            item = item_from(entry)
            if item is not None:
                yield item


def json_values(text: str) -> Iterator[Any]:
    """Every outermost JSON object/array the standard decoder can read completely, left to right.

    A value that fails to decode (truncated, broken) is skipped one character at a time, so the
    complete values nested inside it are still found.
    """
    position = 0
    while True:
        match = _VALUE_START.search(text, position)
        if match is None:
            return
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except json.JSONDecodeError:
            position = match.start() + 1
            continue
        yield value
        position = end


def _repair(text: str) -> Any:
    import json_repair

    try:
        return json_repair.loads(text)
    except Exception:  # json-repair is best effort; an answer it cannot handle is a parse failure
        return None


def parse_answer(
    text: str,
    *,
    truncated: bool = False,
    expected_ids: Collection[str] = (),
    prompt_parts: Sequence[str] = (),
) -> ParsedAnswer:
    """The complete answer items in a model's reply (see the module docstring for the rules).

    ``expected_ids``: the batch's ids; when fewer of them are found in a complete (not truncated)
    reply, ``json-repair`` gets a chance to read more. Items for other ids are returned as they are
    (the caller ignores them). When an id occurs twice, the later item wins (an answer after an echo).
    """
    cleaned = clean_response(text, prompt_parts)
    if not cleaned:
        return ParsedAnswer((), "empty answer")
    found: dict[str, AnswerItem] = {}
    for value in json_values(cleaned):
        for item in _items_in(value):
            found.pop(item.comment_id, None)
            found[item.comment_id] = item
    repaired = False
    expected = set(expected_ids)
    if len(expected & found.keys()) < len(expected) or not found:
        repaired_items = list(_items_in(_repair(cleaned)))
        if truncated and repaired_items:
            repaired_items.pop()  # possibly the torn item, completed by guesswork
        if len(expected & {item.comment_id for item in repaired_items}) > len(expected & found.keys()) or (
            not expected and len(repaired_items) > len(found)
        ):
            found = {item.comment_id: item for item in repaired_items}
            repaired = True
    items = tuple(found.values())
    problem: str | None = None
    if not items:
        problem = "truncated before the first complete item" if truncated else "no answer items in the reply"
    elif truncated:
        problem = f"truncated; kept {len(items)} complete items"
    elif repaired:
        problem = "malformed JSON, repaired"
    return ParsedAnswer(items, problem, repaired)
