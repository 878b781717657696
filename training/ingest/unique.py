"""Unique-text counting for millions of comments in bounded memory: hash-range buckets on disk.

While comments stream in, ``(text_id, text, video_id)`` of each goes to one of N Arrow IPC bucket
files chosen by the first byte of its ``text_id``. Afterwards each bucket alone is grouped by id
(pyarrow's C++ hash aggregation) and appended to the output. Peak memory is one bucket plus its
aggregate: about (comments / N) x 60 bytes for danmaku-length texts, so the default N = 32 needs
~7 MB for 3.7M comments and ~200 MB for 100M; raise N (at most 256) beyond that. Buckets are
ranges of the id's first byte and each is sorted, so the output is sorted by id.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BUCKET_SCHEMA = pa.schema([("text_id", pa.string()), ("text", pa.string()), ("video_id", pa.string())])
UNIQUE_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("count", pa.int64()), ("videos", pa.int64())])
MAX_BUCKETS = 256


class UniqueTextCounter:
    """Collects ``(text_id, text, video_id)`` triples into disk buckets; ``write`` aggregates them."""

    def __init__(self, work_dir: Path, *, buckets: int = 32, buffer_rows: int = 4_096) -> None:
        if not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be within 1..{MAX_BUCKETS}, got {buckets}")
        self._dir = Path(tempfile.mkdtemp(prefix="unique-texts-", dir=work_dir))
        self._buckets = buckets
        self._buffer_rows = buffer_rows
        self._buffers: list[tuple[list[str], list[str], list[str | None]]] = [([], [], []) for _ in range(buckets)]
        self._writers: list[pa.ipc.RecordBatchStreamWriter | None] = [None] * buckets

    def __enter__(self) -> UniqueTextCounter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _bucket_of(self, text_id: str) -> int:
        return int(text_id[:2], 16) * self._buckets // MAX_BUCKETS

    def add(self, text_id: str, text: str, video_id: str | None) -> None:
        bucket = self._bucket_of(text_id)
        ids, texts, videos = self._buffers[bucket]
        ids.append(text_id)
        texts.append(text)
        videos.append(video_id)
        if len(ids) >= self._buffer_rows:
            self._flush(bucket)

    def _flush(self, bucket: int) -> None:
        ids, texts, videos = self._buffers[bucket]
        if not ids:
            return
        writer = self._writers[bucket]
        if writer is None:
            writer = pa.ipc.new_stream(str(self._dir / f"bucket-{bucket:03d}.arrow"), BUCKET_SCHEMA)
            self._writers[bucket] = writer
        writer.write_batch(pa.record_batch([ids, texts, videos], schema=BUCKET_SCHEMA))
        self._buffers[bucket] = ([], [], [])

    def write(self, out_path: Path) -> int:
        """Aggregate every bucket into ``out_path`` (Parquet, columns of ``UNIQUE_SCHEMA``); returns the row count."""
        for bucket in range(self._buckets):
            self._flush(bucket)
            writer = self._writers[bucket]
            if writer is not None:
                writer.close()
                self._writers[bucket] = None
        rows = 0
        with pq.ParquetWriter(str(out_path), UNIQUE_SCHEMA) as out:
            for bucket in range(self._buckets):
                path = self._dir / f"bucket-{bucket:03d}.arrow"
                if not path.exists():
                    continue
                with pa.memory_map(str(path)) as source:
                    table = pa.ipc.open_stream(source).read_all()
                grouped = table.group_by("text_id").aggregate(
                    [("text", "min"), ("text_id", "count"), ("video_id", "count_distinct")]
                )
                result = pa.table(
                    {
                        "id": grouped["text_id"],
                        "text": grouped["text_min"],
                        "count": pc.cast(grouped["text_id_count"], pa.int64()),
                        "videos": pc.cast(grouped["video_id_count_distinct"], pa.int64()),
                    },
                    schema=UNIQUE_SCHEMA,
                ).sort_by("id")
                out.write_table(result)
                rows += result.num_rows
                del table, grouped, result
                path.unlink()
        return rows

    def close(self) -> None:
        for writer in self._writers:
            if writer is not None:
                writer.close()
        self._writers = [None] * self._buckets
        shutil.rmtree(self._dir, ignore_errors=True)
