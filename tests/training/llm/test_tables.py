"""Reading texts to label and writing the labelled-text table."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.llm.tables import LABELLED_SCHEMA, read_texts_table, write_labelled_table
from training.records import LLM_LABEL_EXTRA_COLUMNS, text_id


def test_reads_ingest_texts_parquet_and_tables_without_ids(tmp_path: Path) -> None:
    parquet = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["x", " y ", "z"], "count": [1, 2, 3]}), parquet)
    assert read_texts_table(parquet) == [("a", "x"), ("b", "y")]
    csv_path = tmp_path / "texts.csv"
    csv_path.write_text("comment\n你好\n\n再见\n", encoding="utf-8")
    assert read_texts_table(csv_path, text_column="comment") == [(text_id("你好"), "你好"), (text_id("再见"), "再见")]
    with pytest.raises(ValueError, match="no text column 'text'"):
        read_texts_table(csv_path)
    with pytest.raises(FileNotFoundError, match="absent"):
        read_texts_table(tmp_path / "absent.parquet")


def test_sample_is_seeded_and_limit_keeps_the_first(tmp_path: Path) -> None:
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(100)))
    first = read_texts_table(path, sample=10, seed=3)
    assert first == read_texts_table(path, sample=10, seed=3) != read_texts_table(path, sample=10, seed=4)
    assert [text for _, text in read_texts_table(path, limit=3)] == ["t0", "t1", "t2"]


@pytest.mark.parametrize("name", ["labels.parquet", "labels.jsonl"])
def test_labelled_table_round_trips_with_the_llm_columns(tmp_path: Path, name: str) -> None:
    record = {
        "id": "a",
        "text": "哈哈",
        "labels": ["emotions_positive"],
        "subcategories": ["joy"],
        "source": "llm",
        "raw_labels": ["Emotions_Positive"],
        "raw_subcategories": ["joy"],
        "unknown_labels": [],
        "rationale": "laughter",
        "model": "m",
    }
    path = tmp_path / name
    write_labelled_table([record], path)
    rows = pq.read_table(path).to_pylist() if name.endswith(".parquet") else [json.loads(path.read_text())]
    assert rows == [record]
    assert tuple(LABELLED_SCHEMA.names[5:]) == LLM_LABEL_EXTRA_COLUMNS
    assert not list(tmp_path.glob(".*partial"))
