"""Input files of a bulk run and how they are read: in chunks of consecutive rows, only the chunks asked for.

Formats, by file name: ``.parquet`` / ``.pq``; ``.csv`` / ``.csv.gz``; ``.jsonl`` / ``.ndjson`` (``.gz`` too),
one JSON object per line, blank lines ignored. The text column must hold strings (null allowed); the id column,
when given, may hold any scalar and is turned into a string.

Rows are numbered from 0 in file order (JSONL: the non-blank lines). Parquet is read chunk by chunk through its
row groups (a chunk that is not wanted is never read); CSV and JSONL are streamed, and only the rows of wanted
chunks are converted to Python objects.

A *bad row* is one that cannot be read as a comment: invalid UTF-8 in its text (CSV, JSONL), a JSONL line that is
not a JSON object, a text that is not a string, an id that is not a scalar. ``on_bad_rows="fail"`` (the default)
stops with an ``InputError`` naming the file and the line (JSONL) or data row (CSV, 1-based after the header);
``"skip"`` keeps the row's place with a null text and id (it is not classified) and hands it over in
``Chunk.rejects`` with its line number and problem, for the run to write to its rejects files.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

OnBadRows = Literal["fail", "skip"]
# A rejected row's raw content is kept up to this many characters (enough to find and fix it).
_RAW_CHARS = 2000

Format = Literal["parquet", "csv", "jsonl"]

# Longest suffix first: ".csv.gz" before ".csv".
SUFFIXES: tuple[tuple[str, Format], ...] = (
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".csv.gz", "csv"),
    (".csv", "csv"),
    (".jsonl.gz", "jsonl"),
    (".jsonl", "jsonl"),
    (".ndjson.gz", "jsonl"),
    (".ndjson", "jsonl"),
)
# Streamed formats are handed over in record batches of about this many bytes (CSV) or lines (JSONL).
_CSV_BLOCK_BYTES = 1 << 20
_JSONL_LINES_PER_BATCH = 4096


class InputError(ValueError):
    """An input file cannot be used; the message names the file (and line or column) and the problem."""

    def __init__(self, where: Path | str, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


def detect_format(name: str) -> Format | None:
    lowered = name.lower()
    return next((fmt for suffix, fmt in SUFFIXES if lowered.endswith(suffix)), None)


@dataclass(frozen=True)
class InputFile:
    path: Path
    key: str  # path relative to the --input directory (the file name for a single file); names its output folder
    format: Format
    size_bytes: int


def discover_inputs(path: Path) -> list[InputFile]:
    """The input files under ``path`` (a file, or a directory searched recursively), sorted by key.

    In a directory, files and folders whose name starts with ``.`` or ``_`` are ignored (temporary files,
    ``_SUCCESS`` markers), as are files of other formats.
    """
    if path.is_file():
        fmt = detect_format(path.name)
        if fmt is None:
            known = ", ".join(suffix for suffix, _ in SUFFIXES)
            raise InputError(path, f"unsupported file type (expected one of {known})")
        return [InputFile(path, path.name, fmt, path.stat().st_size)]
    if not path.is_dir():
        raise InputError(path, "no such file or directory")
    files = []
    for candidate in sorted(path.rglob("*")):
        relative = candidate.relative_to(path)
        if any(part.startswith((".", "_")) for part in relative.parts) or not candidate.is_file():
            continue
        fmt = detect_format(candidate.name)
        if fmt is not None:
            files.append(InputFile(candidate, relative.as_posix(), fmt, candidate.stat().st_size))
    if not files:
        known = ", ".join(suffix for suffix, _ in SUFFIXES)
        raise InputError(path, f"the directory holds no input file ({known})")
    return files


@dataclass(frozen=True)
class Reject:
    """A bad row that was skipped: its row number (0-based, as in the output), line (JSONL) and problem."""

    row: int
    line: int | None
    problem: str
    raw: str


@dataclass
class Chunk:
    """Rows ``start_row .. start_row + len(texts) - 1`` of one file."""

    index: int
    start_row: int
    ids: list[str | None]
    texts: list[str | None]
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.texts)


# take(lo, hi) -> (ids or None, texts, rejects) of the rows lo..hi-1 of a record batch (reject rows relative to lo)
Taken = tuple[list[str | None] | None, list[str | None], list[Reject]]
Take = Callable[[int, int], Taken]


@dataclass
class _Assembler:
    """Cuts a stream of record batches into chunks, materialising only the wanted ones."""

    chunk_rows: int
    wanted: Callable[[int], bool]
    rows_seen: int = 0
    _open: Chunk | None = field(default=None, repr=False)

    def add_batch(self, length: int, take: Take) -> Iterator[Chunk]:
        start = self.rows_seen
        position = start
        end = start + length
        while position < end:
            index = position // self.chunk_rows
            chunk_end = min(end, (index + 1) * self.chunk_rows)
            if self.wanted(index):
                ids, texts, rejects = take(position - start, chunk_end - start)
                if self._open is None:
                    self._open = Chunk(index, position, [], [])
                self._open.ids.extend(ids if ids is not None else [None] * len(texts))
                self._open.texts.extend(texts)
                for reject in rejects:
                    self._open.rejects.append(Reject(position + reject.row, reject.line, reject.problem, reject.raw))
                if chunk_end == (index + 1) * self.chunk_rows:
                    yield self._open
                    self._open = None
            position = chunk_end
        self.rows_seen = end

    def finish(self) -> Iterator[Chunk]:
        if self._open is not None:
            yield self._open
            self._open = None


class ChunkReader:
    """Reads the chunks of one file. ``total_rows`` is known up front for Parquet, after ``chunks()`` otherwise."""

    def __init__(
        self,
        file: InputFile,
        *,
        chunk_rows: int,
        text_column: str,
        id_column: str | None,
        on_bad_rows: OnBadRows = "fail",
    ) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.file = file
        self.on_bad_rows = on_bad_rows
        self.chunk_rows = chunk_rows
        self.text_column = text_column
        self.id_column = id_column
        self.total_rows: int | None = None

    @property
    def columns(self) -> list[str]:
        return [self.text_column] if self.id_column is None else [self.text_column, self.id_column]

    def _check_columns(self, available: Sequence[str]) -> None:
        for option, column in (("--text-column", self.text_column), ("--id-column", self.id_column)):
            if column is not None and column not in available:
                raise InputError(self.file.path, f"no column {column!r} ({option}); it has {list(available)}")

    def chunks(self, wanted: Callable[[int], bool]) -> Iterator[Chunk]:
        """The chunks whose index ``wanted`` accepts, in order."""
        if self.file.format == "parquet":
            return self._parquet_chunks(wanted)
        if self.file.format == "csv":
            return self._csv_chunks(wanted)
        return self._jsonl_chunks(wanted)

    # --- Parquet: random access through row groups ---------------------------------------------
    def _open_parquet(self) -> Any:
        try:
            parquet = pq.ParquetFile(self.file.path)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(self.file.path, f"not a readable Parquet file ({exc})") from exc
        self._check_columns(parquet.schema_arrow.names)
        text_type = parquet.schema_arrow.field(self.text_column).type
        if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type) or pa.types.is_null(text_type)):
            raise InputError(self.file.path, f"column {self.text_column!r} holds {text_type}, expected strings")
        self.total_rows = parquet.metadata.num_rows
        return parquet

    def _parquet_chunks(self, wanted: Callable[[int], bool]) -> Iterator[Chunk]:
        parquet = self._open_parquet()
        total = parquet.metadata.num_rows
        group_starts = [0]
        for group in range(parquet.metadata.num_row_groups):
            group_starts.append(group_starts[-1] + parquet.metadata.row_group(group).num_rows)
        cache: dict[int, Any] = {}  # row group -> its table; a group spanning several chunks is read once
        for index in range((total + self.chunk_rows - 1) // self.chunk_rows):
            if not wanted(index):
                continue
            start, end = index * self.chunk_rows, min(total, (index + 1) * self.chunk_rows)
            groups = [g for g in range(len(group_starts) - 1) if group_starts[g] < end and group_starts[g + 1] > start]
            for stale in [g for g in cache if g < groups[0]]:
                del cache[stale]
            tables = []
            for group in groups:
                if group not in cache:
                    try:
                        cache[group] = parquet.read_row_group(group, columns=self.columns)
                    except (OSError, pa.ArrowException) as exc:
                        raise InputError(self.file.path, f"cannot read row group {group} ({exc})") from exc
                tables.append(cache[group])
            table = pa.concat_tables(tables).slice(start - group_starts[groups[0]], end - start)
            ids, texts, _ = _columns_to_python(self.file.path, table, self.text_column, self.id_column)
            yield Chunk(index, start, ids if ids is not None else [None] * len(texts), texts)

    # --- CSV: streamed by pyarrow ----------------------------------------------------------------
    def _csv_reader(self, columns: list[str] | None) -> Any:
        types = dict.fromkeys(columns or [], pa.string())
        if columns:
            types[self.text_column] = pa.binary()  # decoded row by row: one bad byte is one bad row, not a batch
        convert = pa_csv.ConvertOptions(
            include_columns=columns,
            column_types=types,
            strings_can_be_null=False,  # an empty field stays "", and "NA" or "null" stay the comment they are
        )
        try:
            return pa_csv.open_csv(
                str(self.file.path),  # a path: pyarrow decompresses .gz itself
                read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=convert,
            )
        except (OSError, pa.ArrowException) as exc:
            raise InputError(self.file.path, f"not a readable CSV file ({exc})") from exc

    def _csv_chunks(self, wanted: Callable[[int], bool]) -> Iterator[Chunk]:
        header_reader = self._csv_reader(None)
        self._check_columns(header_reader.schema.names)
        header_reader.close()
        reader = self._csv_reader(self.columns)
        assembler = _Assembler(self.chunk_rows, wanted)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (OSError, pa.ArrowException) as exc:
                raise InputError(self.file.path, f"CSV parse error after row {assembler.rows_seen} ({exc})") from exc
            table = pa.Table.from_batches([batch])

            def take(lo: int, hi: int, table: Any = table, first: int = assembler.rows_seen) -> Taken:
                ids, texts, rejects = _columns_to_python(
                    self.file.path, table.slice(lo, hi - lo), self.text_column, self.id_column
                )
                for reject in rejects:
                    self._bad_row(f"{self.file.path}: data row {first + lo + reject.row + 1}", reject.problem)
                return ids, texts, rejects

            yield from assembler.add_batch(batch.num_rows, take)
        yield from assembler.finish()
        self.total_rows = assembler.rows_seen

    # --- JSONL: one object per line -------------------------------------------------------------
    def _bad_row(self, where: str, problem: str) -> None:
        """Stop on a bad row, unless bad rows are skipped."""
        if self.on_bad_rows == "fail":
            raise InputError(where, f"{problem} (--on-bad-rows skip sets such rows aside in a rejects file)")

    def _jsonl_chunks(self, wanted: Callable[[int], bool]) -> Iterator[Chunk]:
        assembler = _Assembler(self.chunk_rows, wanted)
        checked = False
        try:
            with _open_binary(self.file.path) as handle:
                batch: list[tuple[int, bytes]] = []
                for line_number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    if not checked:
                        record = self._parse_line(line_number, line)
                        if isinstance(record, dict):
                            self._check_columns(list(record))
                            checked = True
                    batch.append((line_number, line))
                    if len(batch) == _JSONL_LINES_PER_BATCH:
                        yield from assembler.add_batch(len(batch), self._jsonl_take(batch))
                        batch = []
                if batch:
                    yield from assembler.add_batch(len(batch), self._jsonl_take(batch))
        except (OSError, EOFError) as exc:
            raise InputError(self.file.path, f"cannot read it ({exc})") from exc
        yield from assembler.finish()
        self.total_rows = assembler.rows_seen

    def _parse_line(self, line_number: int, line: bytes) -> dict[str, Any] | str:
        """The line's object, or (skipping bad rows) the problem; raises InputError when failing on bad rows."""
        where = f"{self.file.path}:{line_number}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"invalid UTF-8 byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of the line"
            self._bad_row(where, problem)
            return problem
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            problem = f"not valid JSON ({exc})"
            self._bad_row(where, problem)
            return problem
        if not isinstance(record, dict):
            problem = f"expected a JSON object, got {type(record).__name__}"
            self._bad_row(where, problem)
            return problem
        return record

    def _jsonl_take(self, lines: list[tuple[int, bytes]]) -> Take:
        def take(lo: int, hi: int) -> Taken:
            ids: list[str | None] = []
            texts: list[str | None] = []
            rejects: list[Reject] = []
            for offset, (line_number, line) in enumerate(lines[lo:hi]):
                record = self._parse_line(line_number, line)
                problem = record if isinstance(record, str) else self._record_problem(record)
                if problem is not None:
                    self._bad_row(f"{self.file.path}:{line_number}", problem)
                    raw = line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")[:_RAW_CHARS]
                    rejects.append(Reject(offset, line_number, problem, raw))
                    texts.append(None)
                    ids.append(None)
                    continue
                assert isinstance(record, dict)
                texts.append(record.get(self.text_column))
                if self.id_column is not None:
                    value = record.get(self.id_column)
                    ids.append(None if value is None else str(value))
            return (ids if self.id_column is not None else None), texts, rejects

        return take

    def _record_problem(self, record: dict[str, Any]) -> str | None:
        text = record.get(self.text_column)
        if text is not None and not isinstance(text, str):
            return f"{self.text_column!r} is a {type(text).__name__}, expected a string"
        if self.id_column is not None and isinstance(record.get(self.id_column), (dict, list)):
            return f"{self.id_column!r} is a {type(record.get(self.id_column)).__name__}, expected a scalar"
        return None


def _open_binary(path: Path) -> io.BufferedIOBase:
    # Lines are decoded one by one, so that an invalid byte is reported (or skipped) with its line number.
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _decode_texts(values: list[Any]) -> tuple[list[str | None], list[Reject]]:
    """Texts read as bytes (CSV), decoded one by one: an undecodable one is a null text and a reject."""
    texts: list[str | None] = []
    rejects: list[Reject] = []
    for row, value in enumerate(values):
        if not isinstance(value, bytes):
            texts.append(value)
            continue
        try:
            texts.append(value.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problem = f"invalid UTF-8 byte 0x{value[exc.start]:02x} at byte {exc.start + 1} of the text"
            rejects.append(Reject(row, None, problem, value.decode("utf-8", errors="backslashreplace")[:_RAW_CHARS]))
            texts.append(None)
    return texts, rejects


def _columns_to_python(path: Path, table: Any, text_column: str, id_column: str | None) -> Taken:
    texts, rejects = _decode_texts(table.column(text_column).to_pylist())
    if id_column is None:
        return None, texts, rejects
    column = table.column(id_column)
    if not pa.types.is_string(column.type):
        try:
            column = pc.cast(column, pa.string())
        except pa.ArrowException as exc:
            raise InputError(path, f"column {id_column!r} of type {column.type} cannot be read as ids ({exc})") from exc
    ids: list[str | None] = column.to_pylist()
    for reject in rejects:
        ids[reject.row] = None
    return ids, texts, rejects
