"""Read and write labelled-text tables (the hand-over format of ``training/records.py``).

Formats, chosen by file suffix:

- ``.jsonl``: one JSON object per line (the default output format);
- ``.parquet``: one row per text, list columns for labels;
- ``.csv``: a header row; ``labels``/``subcategories`` cells hold a JSON list (``["social"]``) or
  names separated by ``|``, ``;`` or ``,``;
- ``.json``: a Label Studio export (see ``training/labelstudio.py``).

Columns: ``id`` (made from the row number when absent), ``text`` (required), ``labels`` (alias
``label``), ``subcategories`` (alias ``subcategory``), ``source`` (the caller's default when
absent); every other column is kept in ``LabelledText.extra`` and written back out. Labels are
kept as written: stages normalise them (``training.taxonomy.normalise_labels``) and the agreement
stage compares before and after.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from training.records import LabelledText

CORE_COLUMNS = ("id", "text", "labels", "subcategories", "source")
_ALIASES = {"label": "labels", "subcategory": "subcategories", "sub_categories": "subcategories"}
READABLE_SUFFIXES = (".jsonl", ".parquet", ".csv", ".json")
WRITABLE_SUFFIXES = (".jsonl", ".parquet")


class TableError(ValueError):
    """A table file cannot be read; the message names the file, the row and the problem."""

    def __init__(self, path: Path | str, problem: str, *, row: int | None = None) -> None:
        self.path = str(path)
        self.row = row
        where = f"{self.path}:{row}" if row is not None else self.path
        super().__init__(f"{where}: {problem}")


def _as_names(value: Any, *, path: Path, row: int, column: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return ()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise TableError(path, f"column {column!r} is not a JSON list: {stripped[:80]!r}", row=row) from exc
        else:
            for separator in ("|", ";", ","):
                if separator in stripped:
                    return tuple(part.strip() for part in stripped.split(separator) if part.strip())
            return (stripped,)
    if isinstance(value, (list, tuple)):
        if not all(isinstance(item, str) for item in value):
            raise TableError(path, f"column {column!r} must hold strings, got {value!r}", row=row)
        return tuple(item for item in value if item.strip())
    raise TableError(path, f"column {column!r} must be a list of names, got {type(value).__name__}", row=row)


def record_from_mapping(row: Mapping[str, Any], *, path: Path, row_number: int, default_source: str) -> LabelledText:
    """One table row -> ``LabelledText`` (aliases folded, labels parsed, extras kept)."""
    fields = {_ALIASES.get(key, key): value for key, value in row.items()}
    text = fields.get("text")
    if not isinstance(text, str):
        raise TableError(path, f"missing or non-text 'text' column (got {text!r})", row=row_number)
    raw_id = fields.get("id")
    identifier = str(raw_id) if raw_id not in (None, "") else f"row{row_number}"
    source = fields.get("source")
    # None extras are dropped: Parquet and CSV give every row every column, filled with nulls.
    extra = {key: value for key, value in fields.items() if key not in CORE_COLUMNS and value is not None}
    return LabelledText(
        id=identifier,
        text=text,
        labels=_as_names(fields.get("labels"), path=path, row=row_number, column="labels"),
        subcategories=_as_names(fields.get("subcategories"), path=path, row=row_number, column="subcategories"),
        source=str(source) if source not in (None, "") else default_source,
        extra=extra,
    )


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TableError(path, f"invalid JSON ({exc.msg})", row=number) from exc
            if not isinstance(value, dict):
                raise TableError(path, f"expected a JSON object, got {type(value).__name__}", row=number)
            yield number, value


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise TableError(path, f"CSV header must name a 'text' column, got {reader.fieldnames}")
        for number, row in enumerate(reader, start=2):
            yield number, dict(row)


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise TableError(path, f"not a readable Parquet file ({exc})") from exc
    number = 0
    for batch in parquet.iter_batches(batch_size=65_536):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def iter_labelled(path: Path | str, *, default_source: str = "unknown") -> Iterator[LabelledText]:
    """Stream the rows of a labelled-text table (any readable format)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix == ".json":
        from training.labelstudio import read_label_studio

        yield from read_label_studio(path, default_source=default_source)
        return
    readers = {".jsonl": _jsonl_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}
    if suffix not in readers:
        raise TableError(path, f"unknown table format {suffix!r}; use one of {list(READABLE_SUFFIXES)}")
    for number, row in readers[suffix](path):
        yield record_from_mapping(row, path=path, row_number=number, default_source=default_source)


def read_labelled(
    path: Path | str, *, default_source: str = "unknown", require_labels: bool = True
) -> list[LabelledText]:
    """All rows of a table; ids must be unique, and (by default) every row must carry a label."""
    records = list(iter_labelled(path, default_source=default_source))
    seen: set[str] = set()
    for number, record in enumerate(records, start=1):
        if record.id in seen:
            raise TableError(path, f"duplicate id {record.id!r}", row=number)
        seen.add(record.id)
        if require_labels and not record.labels and not record.subcategories:
            raise TableError(path, f"row {record.id!r} has no labels", row=number)
    if not records:
        raise TableError(path, "table is empty")
    return records


def record_to_row(record: LabelledText) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": record.id,
        "text": record.text,
        "labels": list(record.labels),
        "subcategories": list(record.subcategories),
        "source": record.source,
    }
    row.update(record.extra)
    return row


def _atomic_target(path: Path) -> tuple[int, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    return handle, Path(name)


def write_labelled(path: Path | str, records: Iterable[LabelledText]) -> Path:
    """Write a table (JSONL or Parquet by suffix) atomically: readers never see a half-written file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise TableError(path, f"cannot write {suffix!r}; use one of {list(WRITABLE_SUFFIXES)}")
    handle, staging = _atomic_target(path)
    try:
        if suffix == ".jsonl":
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                for record in records:
                    out.write(json.dumps(record_to_row(record), ensure_ascii=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            os.close(handle)
            rows = [record_to_row(record) for record in records]
            # from_pylist takes its columns from the first row; give every row every column.
            columns = list(dict.fromkeys(key for row in rows for key in row))
            table = pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows])
            pq.write_table(table, staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def table_path(directory: Path, name: str, table_format: str) -> Path:
    """Where a stage writes its table ``name`` in the run's table format (``jsonl`` or ``parquet``)."""
    return directory / f"{name}.{table_format}"


def write_json(path: Path | str, payload: Any) -> Path:
    """Write a JSON document atomically (reports, metadata)."""
    path = Path(path)
    handle, staging = _atomic_target(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, ensure_ascii=False, indent=2)
            out.write("\n")
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path | str, text: str) -> Path:
    """Write a text file atomically (Markdown reports)."""
    path = Path(path)
    handle, staging = _atomic_target(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def texts_of(records: Sequence[LabelledText]) -> list[str]:
    return [record.text for record in records]
