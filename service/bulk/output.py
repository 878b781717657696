"""What a bulk run writes, and how it stays correct when a run is killed and started again.

Layout of ``--output``::

    _run.json                                    the run's parameters; a later run must match them
    _manifests/shard-00003-of-00016.json         written when shard 3 has finished (rows, labels, parts)
    _rejects/<input key>/chunk-000012.jsonl      with --on-bad-rows skip: the bad rows of chunk 12, one JSON
                                                 object each (source, row, line, problem, raw), written before
                                                 its part, so a finished part always has its rejects
    <input key>/chunk-000012.parquet             the results of chunk 12 of that input file

Each part is written to a hidden temporary name in its folder, flushed to disk and renamed over its final name
(``os.replace`` is atomic on one file system), so a part either exists whole or not at all. A killed run leaves at
most some ``.chunk-*.tmp`` files, which the next run of that shard deletes; it then skips every part that exists
and writes the rest, so no row is lost or written twice. Names starting with ``_`` or ``.`` are skipped by
Parquet dataset readers (``pyarrow.dataset``, pandas, Spark, DuckDB), so ``--output`` reads as one dataset.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

RUN_FILE = "_run.json"
MANIFEST_DIR = "_manifests"
REJECTS_DIR = "_rejects"
PART_PATTERN = re.compile(r"^chunk-(\d{6,})\.parquet$")
TEMP_PATTERN = re.compile(r"^\.chunk-(\d{6,})\.parquet\.[0-9a-f]+\.tmp$")
# Keys of the Parquet footer metadata of every part, checked before a part is trusted on resume.
META_SOURCE = b"danmaku.source"
META_CHUNK = b"danmaku.chunk"
META_START_ROW = b"danmaku.start_row"

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("label", pa.string()),
        pa.field("subcategory", pa.string()),
        pa.field("labels", pa.list_(pa.string())),
        pa.field("route", pa.list_(pa.string())),
        pa.field("information_probability", pa.float64()),
        pa.field("emotion_version", pa.string()),
        pa.field("information_version", pa.string()),
        pa.field("source", pa.string()),
        pa.field("row", pa.int64()),
    ]
)


class RunMismatch(ValueError):
    """``--output`` holds results of a run with other parameters; mixing them would corrupt the output."""


class InputRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    format: str
    size_bytes: int


class RunRecord(BaseModel):
    """The parameters that decide the content of every part. All shards of a run write the same record."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[InputRecord]
    text_column: str
    id_column: str | None
    chunk_rows: int
    num_shards: int
    mode: str
    information_threshold: float
    routed_labels: list[str]
    models: dict[str, str] = Field(description="Bundle name -> version.")
    on_bad_rows: str = Field("fail", description="fail: a bad row stops the run; skip: it goes to _rejects/.")


class PartRecord(BaseModel):
    path: str
    source: str
    chunk: int
    start_row: int
    rows: int


class ShardManifest(BaseModel):
    shard_index: int
    num_shards: int
    run: RunRecord
    rows: int = Field(description="Input rows of this shard (= output rows).")
    empty_texts: int = Field(description="Rows with a null or blank text: in the output with a null label.")
    rejected_rows: int = Field(
        0, description="Bad rows skipped (--on-bad-rows skip): null text and label in the output, listed in _rejects/."
    )
    label_counts: dict[str, int]
    parts: list[PartRecord]
    resumed_parts: int = Field(description="Parts found finished from an earlier run and kept.")
    written_parts: int = Field(description="Parts written by this run.")
    elapsed_s: float
    finished_at: str


def part_path(output_dir: Path, source: str, chunk_index: int) -> Path:
    return output_dir / source / f"chunk-{chunk_index:06d}.parquet"


def rejects_path(output_dir: Path, source: str, chunk_index: int) -> Path:
    return output_dir / REJECTS_DIR / source / f"chunk-{chunk_index:06d}.jsonl"


def write_rejects(path: Path, source: str, rejects: list[Any]) -> None:
    """The skipped rows of one chunk (``inputs.Reject``), one JSON object per line."""
    lines = [
        json.dumps(
            {"source": source, "row": r.row, "line": r.line, "problem": r.problem, "raw": r.raw}, ensure_ascii=False
        )
        for r in rejects
    ]
    _write_atomically(path, lambda temporary: temporary.write_text("".join(f"{line}\n" for line in lines), "utf-8"))


def count_rejects(output_dir: Path, parts: list[PartRecord]) -> int:
    """Rejected rows of these parts, read back from their rejects files."""
    total = 0
    for part in parts:
        path = rejects_path(output_dir, part.source, part.chunk)
        if path.is_file():
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
    return total


def manifest_path(output_dir: Path, shard_index: int, num_shards: int) -> Path:
    return output_dir / MANIFEST_DIR / f"shard-{shard_index:05d}-of-{num_shards:05d}.json"


def _write_atomically(path: Path, write: Any) -> None:
    """``write(temporary_path)``, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not every file system allows fsync on a directory
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def _write_json(path: Path, model: BaseModel) -> None:
    _write_atomically(path, lambda temporary: temporary.write_text(model.model_dump_json(indent=2) + "\n"))


def claim_run(output_dir: Path, record: RunRecord) -> None:
    """Write ``_run.json``, or check that the one there has the same parameters (a resumed or parallel shard)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / RUN_FILE
    if path.is_file():
        try:
            existing = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunMismatch(f"{path}: unreadable ({exc}); remove it only if {output_dir} holds no results") from exc
        mine, theirs = record.model_dump(), existing.model_dump()
        differences = [f"{key}: {theirs[key]!r} there, {mine[key]!r} now" for key in mine if mine[key] != theirs[key]]
        if differences:
            raise RunMismatch(
                f"{output_dir} holds results of a run with other parameters ({'; '.join(differences)}); "
                "use another --output, or delete that one to start over"
            )
        return
    _write_json(path, record)


def write_part(path: Path, table: pa.Table, *, source: str, chunk_index: int, start_row: int) -> None:
    metadata = {
        META_SOURCE: source.encode("utf-8"),
        META_CHUNK: str(chunk_index).encode(),
        META_START_ROW: str(start_row).encode(),
    }
    table = table.replace_schema_metadata(metadata)
    _write_atomically(path, lambda temporary: pq.write_table(table, temporary, compression="zstd"))


def read_part_record(path: Path, output_dir: Path) -> PartRecord | None:
    """The part's record if it is a readable part of this layout, else None (it will be redone)."""
    match = PART_PATTERN.match(path.name)
    if match is None:
        return None
    try:
        metadata = pq.read_metadata(path)
        keys = metadata.schema.to_arrow_schema().metadata or {}
        source = keys[META_SOURCE].decode("utf-8")
        chunk = int(keys[META_CHUNK])
        start_row = int(keys[META_START_ROW])
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        logger.warning("%s is not a readable part (%s): it will be written again", path, exc)
        return None
    relative = path.relative_to(output_dir).as_posix()
    if chunk != int(match.group(1)) or relative != f"{source}/{path.name}":
        logger.warning("%s describes source %r chunk %d: it will be written again", path, source, chunk)
        return None
    return PartRecord(path=relative, source=source, chunk=chunk, start_row=start_row, rows=metadata.num_rows)


def existing_parts(output_dir: Path, source: str) -> dict[int, PartRecord]:
    """Chunk index -> record of the finished parts of one input file."""
    folder = output_dir / source
    if not folder.is_dir():
        return {}
    parts = {}
    for path in folder.iterdir():
        record = read_part_record(path, output_dir)
        if record is not None:
            parts[record.chunk] = record
    return parts


def remove_stale_temporaries(output_dir: Path, source: str, owned: Any) -> int:
    """Delete the temporary files a killed run of this shard left (``owned(chunk_index)`` selects the shard's)."""
    folder = output_dir / source
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        match = TEMP_PATTERN.match(path.name)
        if match is not None and owned(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def write_manifest(output_dir: Path, manifest: ShardManifest) -> Path:
    path = manifest_path(output_dir, manifest.shard_index, manifest.num_shards)
    _write_json(path, manifest)
    return path
