"""The comments of any table the project reads, for selection: a sample of traffic, a bulk output.

Read with the bulk path's readers (``service.bulk.inputs``): a JSONL/CSV/Parquet file (``.gz`` too) or
a directory of them, e.g. a ``danmaku-serve classify-file`` output (its Parquet parts; labels it
already holds are ignored, the comments are scored afresh). Blank and null texts are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.bulk.inputs import ChunkReader, discover_inputs

_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class Comment:
    id: str  # the id column's value, else "<table key>:<row>"
    text: str
    table: str  # the file's key (its path under the input directory, or its name)
    row: int  # 0-based row in that file


def read_comments(path: Path, *, text_column: str = "text", id_column: str | None = None) -> list[Comment]:
    """Every non-blank comment of the file or directory ``path``, in file and row order."""
    comments: list[Comment] = []
    for file in discover_inputs(path):
        reader = ChunkReader(file, chunk_rows=_CHUNK_ROWS, text_column=text_column, id_column=id_column)
        for chunk in reader.chunks(lambda _index: True):
            for offset, (comment_id, text) in enumerate(zip(chunk.ids, chunk.texts, strict=True)):
                if text is None or not text.strip():
                    continue
                row = chunk.start_row + offset
                comments.append(
                    Comment(comment_id if comment_id is not None else f"{file.key}:{row}", text, file.key, row)
                )
    if not comments:
        raise ValueError(f"{path}: no comment to select from (column {text_column!r} is empty or blank in every row)")
    return comments
