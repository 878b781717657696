"""Manual labels from a Label Studio JSON export.

The full JSON export is a list of tasks::

    [{"id": 7, "data": {"text": "前方高能"},
      "annotations": [{"was_cancelled": false, "updated_at": "...",
                       "result": [{"type": "choices", "from_name": "labels",
                                   "value": {"choices": ["social", "interaction"]}}]}]}]

Every ``choices`` result and every ``taxonomy`` path (``[["information", "domain_knowledge"]]``)
of the chosen annotation contributes names; names of main categories become ``labels`` and the
rest ``subcategories`` (normalisation later moves anything misplaced). The chosen annotation is
the ground-truth one if any, else the most recently updated non-cancelled one. Tasks without a
usable annotation are skipped and counted in the log. A JSON-MIN export (a list of flat objects
with ``text`` and ``labels``/``label``) is read like a JSONL table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.records import LabelledText
from training.tables import TableError, record_from_mapping
from training.taxonomy import SCHEMA

logger = logging.getLogger(__name__)


def _choice_names(result: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for item in result:
        value = item.get("value") or {}
        kind = item.get("type")
        if kind == "choices":
            names.extend(str(choice) for choice in value.get("choices", []))
        elif kind == "taxonomy":
            for path in value.get("taxonomy", []):
                names.extend(str(step) for step in path)
    return names


def _chosen_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    usable = [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result")]
    if not usable:
        return None
    truth = [a for a in usable if a.get("ground_truth")]
    if truth:
        return truth[0]
    return max(usable, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))


def _task_text(task: dict[str, Any], text_key: str) -> str | None:
    data = task.get("data") or {}
    value = data.get(text_key)
    if isinstance(value, str):
        return value
    strings = [v for v in data.values() if isinstance(v, str)]
    return strings[0] if len(strings) == 1 else None


def read_label_studio(
    path: Path | str, *, default_source: str = "manual", text_key: str = "text"
) -> Iterator[LabelledText]:
    """The labelled tasks of a Label Studio export, one ``LabelledText`` each."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TableError(path, f"not a Label Studio JSON export ({exc})") from exc
    if not isinstance(tasks, list):
        raise TableError(path, f"a Label Studio export is a JSON list of tasks, got {type(tasks).__name__}")
    skipped = 0
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise TableError(path, f"task is not an object: {task!r:.80}", row=number)
        if "annotations" not in task and "data" not in task:
            yield record_from_mapping(task, path=path, row_number=number, default_source=default_source)
            continue
        text = _task_text(task, text_key)
        if text is None:
            raise TableError(path, f"task has no string data[{text_key!r}]", row=number)
        annotation = _chosen_annotation(task)
        names = _choice_names(annotation["result"]) if annotation else []
        if not names:
            skipped += 1
            continue
        mains = tuple(dict.fromkeys(name for name in names if name.strip().lower() in SCHEMA or name == "other"))
        subs = tuple(dict.fromkeys(name for name in names if name not in mains))
        yield LabelledText(
            id=str(task.get("id", f"task{number}")),
            text=text,
            labels=mains,
            subcategories=subs,
            source=default_source,
            extra={"annotator": annotation.get("completed_by")} if annotation else {},
        )
    if skipped:
        logger.warning("%s: skipped %d task(s) without a usable annotation", path, skipped)
