"""Reading the texts to label and writing the labelled-text table (Parquet, JSONL or CSV by extension)."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from training.records import text_id

LABELLED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("subcategories", pa.list_(pa.string())),
        ("source", pa.string()),
        ("raw_labels", pa.list_(pa.string())),
        ("raw_subcategories", pa.list_(pa.string())),
        ("unknown_labels", pa.list_(pa.string())),
        ("rationale", pa.string()),
        ("model", pa.string()),
    ]
)


def _rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
    if suffix == "parquet":
        return pq.read_table(path).to_pylist()
    if suffix in ("jsonl", "ndjson"):
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if suffix == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    raise ValueError(f"{path}: expected a .parquet, .jsonl or .csv table of texts")


def read_texts_table(
    path: Path,
    *,
    id_column: str = "id",
    text_column: str = "text",
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """``(id, text)`` pairs from a table (ingest's ``texts.parquet`` or any table with a text column).

    Without an id column the id is ``text_id(text)``. ``sample`` draws that many rows at random
    (seeded); ``limit`` keeps the first rows. Empty texts and repeated ids are dropped.
    """
    if not path.is_file():
        raise FileNotFoundError(f"texts table {path} does not exist")
    rows = _rows(path)
    if rows and text_column not in rows[0]:
        raise ValueError(f"{path}: no text column {text_column!r} (columns: {', '.join(rows[0])})")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for row in rows:
        text = str(row.get(text_column) or "").strip()
        if not text:
            continue
        identifier = str(row[id_column]) if row.get(id_column) not in (None, "") else text_id(text)
        if identifier not in seen:
            seen.add(identifier)
            pairs.append((identifier, text))
    if sample is not None and sample < len(pairs):
        pairs = random.Random(seed).sample(pairs, sample)
    if limit is not None:
        pairs = pairs[:limit]
    return pairs


def write_labelled_table(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Write labelled-text records; Parquet for ``.parquet``, JSON lines otherwise. Atomic (temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    if path.suffix == ".parquet":
        columns = {name: [record.get(name) for record in records] for name in LABELLED_SCHEMA.names}
        pq.write_table(pa.table(columns, schema=LABELLED_SCHEMA), temporary)
    else:
        with temporary.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps({name: record.get(name) for name in LABELLED_SCHEMA.names}, ensure_ascii=False))
                handle.write("\n")
    temporary.replace(path)
