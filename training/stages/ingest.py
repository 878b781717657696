"""Stage 1, ingest: danmaku dumps -> a comments table and a unique-texts table (both Parquet).

Streams every input in constant memory: comments go to a ``pyarrow.parquet.ParquetWriter`` in
chunks of ``chunk_rows``, unique texts are counted through disk buckets (``training/ingest/unique``).
Malformed records are written to a JSONL report (file, line, reason, excerpt) and counted; they
never stop the run. Outputs are written under temporary names and renamed when complete, so an
interrupted ingest leaves no half-written table behind; re-running it is the way to resume.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from training.ingest.readers import DEFAULT_TIMEZONE, Comment, Malformed, iter_input_files, read_file
from training.ingest.unique import UniqueTextCounter
from training.tables import write_json

if TYPE_CHECKING:
    from training.config import PipelineConfig
    from training.layout import RunLayout

NAME = "ingest"
SECTION = "ingest"
DESCRIPTION = "raw danmaku files -> comments and unique texts"


class Settings(BaseModel):
    """Stage 1: raw danmaku files -> comments + unique texts (Parquet)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[Path] = Field(
        min_length=1,
        description="Files or directories (searched recursively), .gz allowed.",
        json_schema_extra={"flag": "inputs"},
    )
    file_format: Literal["auto", "xml", "video-hourly", "texts"] = Field(
        "auto", description="Input format; auto detects it per file.", json_schema_extra={"flag": "--format"}
    )
    text_column: str = Field("text", description="Text column of CSV/JSONL text tables.")
    video_column: str | None = Field(None, description="Video id column of text tables (default: guessed).")
    timezone: str = Field(DEFAULT_TIMEZONE, description="Zone of naive date-times.")
    chunk_rows: int = Field(100_000, ge=1, description="Rows per Parquet write (bounds memory).")
    buckets: int = Field(32, ge=1, le=256, description="Disk buckets for unique-text counting.")


COMMENT_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("onset_s", pa.float64()),
        ("mode", pa.int32()),
        ("font_size", pa.int32()),
        ("colour", pa.int64()),
        ("sent_at", pa.int64()),
        ("pool", pa.int32()),
        ("sender", pa.string()),
        ("row_id", pa.int64()),
        ("text", pa.string()),
        ("text_id", pa.string()),
        ("chat_id", pa.string()),
        ("maxlimit", pa.int32()),
        ("collect_ymdh", pa.string()),
        ("source_file", pa.string()),
        ("line", pa.int64()),
    ]
)
log = logging.getLogger(__name__)
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


@dataclass
class IngestReport:
    """What an ingest run read, skipped and wrote."""

    files: int = 0
    comments: int = 0
    unique_texts: int = 0
    malformed: int = 0
    malformed_by_reason: dict[str, int] = field(default_factory=dict)
    comments_by_file: dict[str, int] = field(default_factory=dict)
    malformed_by_file: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    comments_per_second: float = 0.0
    peak_memory_mb: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"ingested {self.comments:,} comments ({self.unique_texts:,} unique texts) from {self.files} file(s) "
            f"in {self.seconds:.1f} s: {self.comments_per_second:,.0f} comments/s, "
            f"peak memory {self.peak_memory_mb:.0f} MB",
            f"malformed records: {self.malformed:,}",
        ]
        reasons = sorted(self.malformed_by_reason.items(), key=_by_count)
        lines += [f"  {count:>8,}  {reason}" for reason, count in reasons]
        lines += [f"{name}: {path}" for name, path in self.outputs.items()]
        return "\n".join(lines)


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in positions or values ("danmu_list[3]: ..." -> "danmu_list[N]")."""
    return re.sub(r"\d+", "N", reason.split(":")[0])


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def _bounded(value: int | None, limit: int) -> int | None:
    # Out-of-range values would make pyarrow reject the whole chunk; null them instead.
    return value if value is None or -limit - 1 <= value <= limit else None


class _CommentBuffer:
    """Column buffers flushed to a ParquetWriter every ``chunk_rows`` comments."""

    def __init__(self, writer: pq.ParquetWriter, chunk_rows: int) -> None:
        self._writer = writer
        self._chunk_rows = chunk_rows
        self._columns: dict[str, list[Any]] = {name: [] for name in COMMENT_SCHEMA.names}

    def add(self, comment: Comment, text_id: str) -> None:
        columns = self._columns
        columns["video_id"].append(comment.video_id)
        columns["onset_s"].append(comment.onset_s)
        columns["mode"].append(_bounded(comment.mode, _INT32_MAX))
        columns["font_size"].append(_bounded(comment.font_size, _INT32_MAX))
        columns["colour"].append(_bounded(comment.colour, _INT64_MAX))
        columns["sent_at"].append(_bounded(comment.sent_at, _INT64_MAX))
        columns["pool"].append(_bounded(comment.pool, _INT32_MAX))
        columns["sender"].append(comment.sender)
        columns["row_id"].append(_bounded(comment.row_id, _INT64_MAX))
        columns["text"].append(comment.text)
        columns["text_id"].append(text_id)
        columns["chat_id"].append(comment.chat_id)
        columns["maxlimit"].append(_bounded(comment.maxlimit, _INT32_MAX))
        columns["collect_ymdh"].append(comment.collect_ymdh)
        columns["source_file"].append(comment.source_file)
        columns["line"].append(comment.line)
        if len(columns["text"]) >= self._chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._columns["text"]:
            return
        batch = pa.record_batch([self._columns[name] for name in COMMENT_SCHEMA.names], schema=COMMENT_SCHEMA)
        self._writer.write_batch(batch)
        self._columns = {name: [] for name in COMMENT_SCHEMA.names}


def ingest(out_dir: Path, *, settings: Settings, progress: bool = True) -> IngestReport:
    """Read danmaku files (or directories of them) into ``out_dir``: ``comments.parquet``, the unique
    texts (``texts.parquet``), ``malformed.jsonl`` (one JSON line per malformed record) and
    ``ingest-report.json``. Returns the run's report.
    """
    comments_out, texts_out, malformed_out = (
        out_dir / "comments.parquet",
        texts_table(out_dir),
        out_dir / "malformed.jsonl",
    )
    files = iter_input_files(list(settings.inputs))
    started = time.perf_counter()
    report = IngestReport(files=len(files))
    reasons: Counter[str] = Counter()
    for path in (comments_out, texts_out, malformed_out):
        path.parent.mkdir(parents=True, exist_ok=True)
    partial = {path: path.with_name(f".{path.name}.partial") for path in (comments_out, texts_out, malformed_out)}
    try:
        with (
            pq.ParquetWriter(str(partial[comments_out]), COMMENT_SCHEMA, compression="zstd") as writer,
            partial[malformed_out].open("w", encoding="utf-8") as malformed_file,
            UniqueTextCounter(texts_out.parent, buckets=settings.buckets) as counter,
            tqdm(unit=" comments", unit_scale=True, disable=not progress, desc="ingest") as bar,
        ):
            buffer = _CommentBuffer(writer, settings.chunk_rows)
            for path in files:
                bar.set_postfix_str(path.name)
                comments = malformed = 0
                for row in read_file(
                    path,
                    file_format=settings.file_format,
                    text_column=settings.text_column,
                    video_column=settings.video_column,
                    timezone=settings.timezone,
                ):
                    if isinstance(row, Malformed):
                        malformed += 1
                        reasons[_reason_kind(row.reason)] += 1
                        malformed_file.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
                        continue
                    identifier = row.text_id
                    buffer.add(row, identifier)
                    counter.add(identifier, row.text, row.video_id)
                    comments += 1
                    if comments % 10_000 == 0:
                        bar.update(10_000)
                bar.update(comments % 10_000)
                report.comments += comments
                report.malformed += malformed
                report.comments_by_file[str(path)] = comments
                if malformed:
                    report.malformed_by_file[str(path)] = malformed
            buffer.flush()
            report.unique_texts = counter.write(partial[texts_out])
        for final, temporary in partial.items():
            os.replace(temporary, final)
    finally:
        for temporary in partial.values():
            temporary.unlink(missing_ok=True)
    report.malformed_by_reason = dict(sorted(reasons.items(), key=_by_count))
    report.seconds = time.perf_counter() - started
    report.comments_per_second = report.comments / report.seconds if report.seconds else 0.0
    report.peak_memory_mb = _peak_memory_mb()
    report.outputs = {"comments": str(comments_out), "unique texts": str(texts_out), "malformed": str(malformed_out)}
    write_json(out_dir / "ingest-report.json", report.to_dict())
    return report


def texts_table(out_dir: Path) -> Path:
    """The unique-texts table ingest writes in ``out_dir`` (what llm-label labels)."""
    return out_dir / "texts.parquet"


def enabled(config: PipelineConfig) -> bool:
    return config.ingest is not None


def inputs(layout: RunLayout) -> list[Path]:
    return list(layout.config.ingest.inputs) if layout.config.ingest else []


def outputs(layout: RunLayout) -> list[Path]:
    return [texts_table(layout.dir(SECTION))]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    report = ingest(layout.dir(SECTION), settings=settings, progress=progress)
    log.info("%s", report.summary())
