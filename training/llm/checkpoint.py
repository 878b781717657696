"""The append-only JSONL checkpoint of ``llm-label``: one line per labelled text, fsync'd.

A line is written only for a complete, validated answer item, and the file is fsync'd after each
batch's lines, so after a crash (even SIGKILL or power loss) every line that exists is a finished
label. The one thing a crash can leave is a torn last line (no trailing newline): ``load``
ignores it and ``open`` cuts it off before appending, so it can never glue onto the next line.
On resume the ids in the file are skipped; an id found twice (impossible unless two runs shared
a file) keeps its first label.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """The checkpoint file cannot be used (not JSONL records with an id)."""


def load_checkpoint(path: Path) -> dict[str, dict[str, Any]]:
    """Records by id from a checkpoint (empty when the file does not exist); a torn last line is ignored."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    with path.open("rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, else an unfinished line
    if torn:
        log.warning("checkpoint %s: ignoring a torn last line (%d bytes) left by an interrupted run", path, len(torn))
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{path}, line {number}: not a JSON record ({error}); was the file edited?") from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise CheckpointError(f"{path}, line {number}: record without a string 'id'")
        records.setdefault(record["id"], record)
    return records


class CheckpointWriter:
    """Appends records as JSON lines and fsyncs after each ``append`` call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[bytes] = path.open("ab")
        self._cut_torn_tail()

    def _cut_torn_tail(self) -> None:
        size = self._handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        with self.path.open("rb") as reader:
            reader.seek(max(0, size - (1 << 20)))
            tail = reader.read()
        if tail.endswith(b"\n"):
            return
        keep = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        if keep == 0 and size > len(tail):
            raise CheckpointError(f"{self.path}: last line longer than 1 MiB; not a checkpoint written by llm-label")
        self._handle.truncate(keep)
        self._handle.seek(keep)
        os.fsync(self._handle.fileno())

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        payload = b"".join(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n" for record in records)
        self._handle.write(payload)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
