"""Streaming readers for the danmaku input formats: each yields ``Comment`` or ``Malformed`` rows.

Formats (``detect_format`` picks one from the file; gzip is recognised by its magic bytes):

- ``xml``: raw Bilibili XML, ``<chatid>``, ``<maxlimit>`` and ``<d p="onset,mode,size,colour,ts,pool,
  sender,rowid">text</d>``. Parsed with expat in 1 MiB chunks, so a file of any size streams and
  every comment knows its line. XML-illegal control characters (common in real dumps) are dropped
  before parsing; a file that is still not well-formed stops at the error, which is reported.
- ``video-hourly``: the reference record ``video_id, collect_YMDH, chat_id, maxlimit, danmu_list``,
  one record per line of JSONL (``danmu_list`` a JSON array of 9-element arrays) or per row of CSV
  (``danmu_list`` a JSON array in one cell; a Python literal such as ``[(1.5, 1, ...)]`` is accepted
  too). Element order: onset s, mode, font size, colour, unix ts, pool, sender hash, row id, text.
- ``texts``: CSV or JSONL with a text column (``text`` unless told); columns named like the nine
  fields (``onset_s``, ``sent_at``, ``aid``...) are picked up, the rest ignored.

Every problem is a ``Malformed`` row with the file, line and reason; readers never raise on bad
records, only on an unreadable file.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import math
import re
import sys
import xml.parsers.expat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from training.records import text_id

Format = Literal["xml", "video-hourly", "texts"]
FORMATS: tuple[str, ...] = ("xml", "video-hourly", "texts")

# Bilibili is a Chinese site: naive date-times in its dumps are Beijing time.
DEFAULT_TIMEZONE = "Asia/Shanghai"
_XML_CHUNK_BYTES = 1 << 20
# Bytes that XML 1.0 forbids; none of them can occur inside a multi-byte UTF-8 sequence.
_XML_ILLEGAL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_EXCERPT_CHARS = 120

# danmu_list cells hold whole videos; the csv module's default field limit (128 KiB) is too small.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(slots=True)
class Comment:
    """One danmaku comment: the nine fields plus where it came from (columns of ``COMMENT_COLUMNS``)."""

    text: str
    source_file: str
    line: int
    video_id: str | None = None
    onset_s: float | None = None
    mode: int | None = None
    font_size: int | None = None
    colour: int | None = None
    sent_at: int | None = None
    pool: int | None = None
    sender: str | None = None
    row_id: int | None = None
    chat_id: str | None = None
    maxlimit: int | None = None
    collect_ymdh: str | None = None

    @property
    def text_id(self) -> str:
        return text_id(self.text)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record that could not be read; reported, never fatal."""

    source_file: str
    line: int
    reason: str
    excerpt: str = ""


Row = Comment | Malformed


class MalformedRecord(ValueError):
    """Raised inside a reader for one bad record; turned into a ``Malformed`` row."""


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading, transparently un-gzipping it (detected by magic bytes)."""
    raw = path.open("rb")
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def detect_format(path: Path) -> Format:
    """Guess the format of ``path`` from its name and, for tables, from its columns."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".xml"):
        return "xml"
    if not name.endswith((".csv", ".jsonl", ".ndjson", ".json")):
        raise ValueError(f"{path}: unknown input format (expected .xml, .csv, .jsonl or .json, optionally .gz)")
    with open_binary(path) as handle:
        head = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace").readline()
    columns: set[str]
    if name.endswith(".csv"):
        columns = {column.strip() for column in next(csv.reader([head]), [])}
    else:
        try:
            first = json.loads(head)
        except json.JSONDecodeError:
            first = {}
        columns = set(first) if isinstance(first, dict) else set()
    return "video-hourly" if "danmu_list" in columns else "texts"


def _excerpt(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:_EXCERPT_CHARS]


def _to_int(value: object, field: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str):
            value = value.strip()
            return int(value) if value.lstrip("-").isdigit() else int(float(value))
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            return int(value)
    except (ValueError, OverflowError):
        pass
    raise MalformedRecord(f"{field} is not an integer: {_excerpt(value)}")


def _to_float(value: object, field: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
    except ValueError:
        pass
    raise MalformedRecord(f"{field} is not a number: {_excerpt(value)}")


def _to_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value).strip()


class _UnixSeconds:
    """Unix seconds from an integer/float or an ISO date-time; naive date-times are in ``zone``.

    Zone offsets are cached per hour: ``datetime.replace(tzinfo=ZoneInfo)`` per row costs more
    than the rest of a row's parsing, and an offset cannot change inside an hour.
    """

    _EPOCH = datetime(1970, 1, 1)

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._offsets: dict[tuple[int, int, int, int], int] = {}

    def __call__(self, value: object) -> int | None:
        if not isinstance(value, str) or not value.strip() or value.strip().lstrip("-").replace(".", "", 1).isdigit():
            return _to_int(value, "sent_at")
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise MalformedRecord(f"sent_at is neither unix seconds nor a date-time: {_excerpt(value)}") from None
        if moment.tzinfo is not None:
            return int(moment.timestamp())
        hour = (moment.year, moment.month, moment.day, moment.hour)
        offset = self._offsets.get(hour)
        if offset is None:
            utc_offset = moment.replace(tzinfo=self.zone).utcoffset()
            offset = int(utc_offset.total_seconds()) if utc_offset is not None else 0
            self._offsets[hour] = offset
        return int((moment - self._EPOCH).total_seconds()) - offset


def _clean_text(value: object) -> str:
    if not isinstance(value, str):
        raise MalformedRecord(f"text is not a string: {_excerpt(value)}")
    text = value.strip()
    if not text:
        raise MalformedRecord("empty text")
    return text


# ---------------------------------------------------------------------------------------------
# Bilibili XML


def _comment_from_p(p: str, text: str, base: Comment) -> Comment:
    fields = p.split(",")
    if len(fields) < 8:
        raise MalformedRecord(f"p attribute has {len(fields)} fields, expected 8: {_excerpt(p)}")
    base.text = _clean_text(text)
    base.onset_s = _to_float(fields[0], "onset")
    base.mode = _to_int(fields[1], "mode")
    base.font_size = _to_int(fields[2], "font size")
    base.colour = _to_int(fields[3], "colour")
    base.sent_at = _to_int(fields[4], "timestamp")
    base.pool = _to_int(fields[5], "pool")
    base.sender = _to_str(fields[6])
    base.row_id = _to_int(fields[7], "row id")
    return base


def read_bilibili_xml(path: Path) -> Iterator[Row]:
    """Stream the ``<d>`` comments of a Bilibili XML file."""
    source = str(path)
    parser = xml.parsers.expat.ParserCreate()
    ready: list[Row] = []
    header: dict[str, str] = {}
    current: dict[str, Any] = {}  # the open element: tag, p, line, text parts

    def start(tag: str, attributes: dict[str, str]) -> None:
        current.clear()
        current.update(tag=tag, p=attributes.get("p"), line=parser.CurrentLineNumber, parts=[])

    def characters(data: str) -> None:
        if current:
            current["parts"].append(data)

    def end(tag: str) -> None:
        if not current or current["tag"] != tag:
            return
        text = "".join(current["parts"])
        line = int(current["line"])
        if tag == "d":
            try:
                if current["p"] is None:
                    raise MalformedRecord("<d> without a p attribute")
                maxlimit = header.get("maxlimit")
                base = Comment(
                    text="",
                    source_file=source,
                    line=line,
                    video_id=header.get("chatid"),
                    chat_id=header.get("chatid"),
                    maxlimit=int(maxlimit) if maxlimit and maxlimit.isdigit() else None,
                )
                ready.append(_comment_from_p(str(current["p"]), text, base))
            except MalformedRecord as problem:
                ready.append(Malformed(source, line, str(problem), _excerpt(f'p="{current["p"]}" {text}')))
        elif tag in ("chatid", "maxlimit"):
            header[tag] = text.strip()
        current.clear()

    parser.StartElementHandler = start
    parser.CharacterDataHandler = characters
    parser.EndElementHandler = end
    parser.buffer_text = True
    with open_binary(path) as handle:
        while True:
            chunk = handle.read(_XML_CHUNK_BYTES)
            try:
                parser.Parse(chunk.translate(None, _XML_ILLEGAL_BYTES), not chunk)
            except xml.parsers.expat.ExpatError as error:
                yield from ready
                reason = f"XML not well-formed ({xml.parsers.expat.ErrorString(error.code)}); rest of the file skipped"
                yield Malformed(source, error.lineno, reason)
                return
            yield from ready
            ready.clear()
            if not chunk:
                return


# ---------------------------------------------------------------------------------------------
# Tables: CSV / JSONL rows


def _iter_table(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | Malformed]]:
    """``(line, row)`` for each record of a CSV or JSONL file; unreadable lines as ``Malformed``."""
    source = str(path)
    name = path.name.lower().removesuffix(".gz")
    with open_binary(path) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
        if name.endswith(".csv"):
            reader = csv.reader(text)
            try:
                columns = [column.strip() for column in next(reader)]
            except StopIteration:
                return
            line = reader.line_num + 1
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    yield line, Malformed(source, line, f"CSV error: {error}")
                    line = reader.line_num + 1
                    continue
                if cells:
                    if len(cells) != len(columns):
                        reason = f"{len(cells)} cells, expected {len(columns)} (columns {', '.join(columns)})"
                        yield line, Malformed(source, line, reason, _excerpt(",".join(cells)))
                    else:
                        yield line, dict(zip(columns, cells, strict=True))
                line = reader.line_num + 1
        else:
            for line, raw in enumerate(text, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError as error:
                    yield line, Malformed(source, line, f"invalid JSON: {error.msg}", _excerpt(raw.strip()))
                    continue
                if not isinstance(record, dict):
                    yield line, Malformed(source, line, "JSON line is not an object", _excerpt(raw.strip()))
                    continue
                yield line, record


def _parse_danmu_list(value: object) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(str(value))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise MalformedRecord(f"danmu_list is neither JSON nor a Python literal: {_excerpt(value)}") from None
    if not isinstance(value, (list, tuple)):
        raise MalformedRecord(f"danmu_list is not a list: {_excerpt(value)}")
    return list(value)


def read_video_hourly(path: Path) -> Iterator[Row]:
    """Stream the comments of video-hourly records (one record per JSONL line or CSV row)."""
    source = str(path)
    for line, record in _iter_table(path):
        if isinstance(record, Malformed):
            yield record
            continue
        try:
            entries = _parse_danmu_list(record.get("danmu_list"))
            video_id = _to_str(record.get("video_id"))
            chat_id = _to_str(record.get("chat_id"))
            maxlimit = _to_int(record.get("maxlimit"), "maxlimit")
            collect = _to_str(record.get("collect_YMDH", record.get("collect_ymdh")))
        except MalformedRecord as problem:
            yield Malformed(source, line, str(problem), _excerpt(record.get("video_id")))
            continue
        for index, entry in enumerate(entries):
            try:
                if not isinstance(entry, (list, tuple)) or len(entry) != 9:
                    size = len(entry) if isinstance(entry, (list, tuple)) else type(entry).__name__
                    raise MalformedRecord(f"danmu_list[{index}] is not a 9-field tuple ({size})")
                onset, mode, size, colour, sent_at, pool, sender, row_id, text = entry
                yield Comment(
                    text=_clean_text(text),
                    source_file=source,
                    line=line,
                    video_id=video_id,
                    onset_s=_to_float(onset, "onset"),
                    mode=_to_int(mode, "mode"),
                    font_size=_to_int(size, "font size"),
                    colour=_to_int(colour, "colour"),
                    sent_at=_to_int(sent_at, "timestamp"),
                    pool=_to_int(pool, "pool"),
                    sender=_to_str(sender),
                    row_id=_to_int(row_id, "row id"),
                    chat_id=chat_id,
                    maxlimit=maxlimit,
                    collect_ymdh=collect,
                )
            except MalformedRecord as problem:
                reason = str(problem) if str(problem).startswith("danmu_list[") else f"danmu_list[{index}]: {problem}"
                yield Malformed(source, line, reason, _excerpt(entry))


# Column names a text table may use for each field (first match wins).
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "video_id": ("video_id", "aid", "bvid", "cid", "chat_id", "video"),
    "onset_s": ("onset_s", "onset", "progress", "time"),
    "mode": ("mode",),
    "font_size": ("font_size", "fontsize", "size"),
    "colour": ("colour", "color"),
    "sent_at": ("sent_at", "timestamp", "ts", "ctime", "date"),
    "pool": ("pool",),
    "sender": ("sender", "sender_hash", "mid_hash", "midHash"),
    "row_id": ("row_id", "rowid", "dmid", "id_str"),
}


def read_texts(
    path: Path,
    *,
    text_column: str = "text",
    video_column: str | None = None,
    zone: tzinfo | None = None,
) -> Iterator[Row]:
    """Stream comments from a CSV/JSONL table with a text column; known field columns are kept."""
    source = str(path)
    unix_seconds = _UnixSeconds(zone or ZoneInfo(DEFAULT_TIMEZONE))
    converters: dict[str, Callable[[object], object]] = {
        "video_id": _to_str,
        "onset_s": lambda value: _to_float(value, "onset"),
        "mode": lambda value: _to_int(value, "mode"),
        "font_size": lambda value: _to_int(value, "font size"),
        "colour": lambda value: _to_int(value, "colour"),
        "sent_at": unix_seconds,
        "pool": lambda value: _to_int(value, "pool"),
        "sender": _to_str,
        "row_id": lambda value: _to_int(value, "row id"),
    }
    # (field, column, converter) for the fields this table has, decided from its first record
    fields: list[tuple[str, str, Callable[[object], object]]] | None = None
    for line, record in _iter_table(path):
        if isinstance(record, Malformed):
            yield record
            continue
        if fields is None:
            if text_column not in record:
                raise ValueError(
                    f"{path}: no text column {text_column!r} (columns: {', '.join(map(str, record))}); "
                    "pass the right --text-column"
                )
            columns = {
                field: next((name for name in names if name in record), "") for field, names in FIELD_COLUMNS.items()
            }
            if video_column is not None:
                if video_column not in record:
                    raise ValueError(f"{path}: no video column {video_column!r} (columns: {', '.join(record)})")
                columns["video_id"] = video_column
            fields = [(field, column, converters[field]) for field, column in columns.items() if column]
        try:
            values = {field: convert(record.get(column)) for field, column, convert in fields}
            yield Comment(text=_clean_text(record.get(text_column)), source_file=source, line=line, **values)  # type: ignore[arg-type]
        except MalformedRecord as problem:
            yield Malformed(source, line, str(problem), _excerpt(record.get(text_column)))


def read_file(
    path: Path,
    *,
    file_format: Format | Literal["auto"] = "auto",
    text_column: str = "text",
    video_column: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
) -> Iterator[Row]:
    """Stream the rows of one input file in the given (or detected) format."""
    chosen = detect_format(path) if file_format == "auto" else file_format
    if chosen == "xml":
        return read_bilibili_xml(path)
    if chosen == "video-hourly":
        return read_video_hourly(path)
    return read_texts(path, text_column=text_column, video_column=video_column, zone=ZoneInfo(timezone))


def iter_input_files(paths: list[Path]) -> list[Path]:
    """Files to ingest: the given files, and the supported files under given directories (sorted)."""
    supported = re.compile(r"\.(xml|csv|jsonl|ndjson|json)(\.gz)?$", re.IGNORECASE)
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and supported.search(p.name)))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    if not files:
        raise FileNotFoundError(f"no input files (.xml/.csv/.jsonl, optionally .gz) in {', '.join(map(str, paths))}")
    return files
