from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.records import LabelledText
from training.tables import TableError, iter_labelled, read_labelled, write_labelled

RECORDS = [
    LabelledText(id="a", text="前方高能", labels=("social",), subcategories=("interaction",), source="manual"),
    LabelledText(
        id="b",
        text="这是上海外滩",
        labels=("information", "emotions_positive"),
        subcategories=("situated_knowledge", "joy"),
        source="llm",
        extra={"provenance": "agreed", "split": "train"},
    ),
]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip_keeps_labels_and_extra_columns(tmp_path: Path, suffix: str) -> None:
    path = write_labelled(tmp_path / f"table{suffix}", RECORDS)
    back = read_labelled(path)
    assert back == RECORDS
    assert back[1].extra["provenance"] == "agreed"
    assert back[1].extra["split"] == "train"


def test_csv_accepts_json_lists_separators_and_aliases(tmp_path: Path) -> None:
    path = tmp_path / "manual.csv"
    path.write_text(
        'text,label,subcategory\n前方高能,"[""social""]",interaction\n笑死,emotions_positive|social,joy;curiosity\n',
        encoding="utf-8",
    )
    first, second = read_labelled(path, default_source="manual")
    assert (first.id, first.labels, first.subcategories, first.source) == (
        "row2",
        ("social",),
        ("interaction",),
        "manual",
    )
    assert second.labels == ("emotions_positive", "social")
    assert second.subcategories == ("joy", "curiosity")


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": "a", "text": "x", "labels": ["social"]}\n{"id": "b", "text": \n', encoding="utf-8")
    with pytest.raises(TableError, match=r"broken\.jsonl:2: invalid JSON"):
        read_labelled(path)


def test_missing_text_duplicate_id_and_unlabelled_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "labels": ["social"]}\n', encoding="utf-8")
    with pytest.raises(TableError, match=r"t\.jsonl:1: missing or non-text 'text'"):
        read_labelled(path)
    path.write_text('{"id": "a", "text": "x", "labels": ["social"]}\n{"id": "a", "text": "y", "labels": ["social"]}\n')
    with pytest.raises(TableError, match="duplicate id 'a'"):
        read_labelled(path)
    path.write_text('{"id": "a", "text": "x", "labels": []}\n')
    with pytest.raises(TableError, match="has no labels"):
        read_labelled(path)
    assert next(iter(iter_labelled(path))).labels == ()


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="file not found"):
        read_labelled(tmp_path / "absent.jsonl")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(TableError, match=r"unknown table format '\.txt'"):
        read_labelled(tmp_path / "t.txt")


def test_label_studio_export(tmp_path: Path) -> None:
    tasks = [
        {
            "id": 11,
            "data": {"text": "这首歌叫什么？"},
            "annotations": [
                {
                    "was_cancelled": False,
                    "updated_at": "2026-01-01T00:00:00Z",
                    "result": [{"type": "choices", "from_name": "main", "value": {"choices": ["social"]}}],
                },
                {
                    "was_cancelled": False,
                    "updated_at": "2026-02-01T00:00:00Z",
                    "result": [
                        {"type": "choices", "from_name": "main", "value": {"choices": ["social"]}},
                        {"type": "choices", "from_name": "sub", "value": {"choices": ["curiosity"]}},
                    ],
                },
            ],
        },
        {
            "id": 12,
            "data": {"text": "出处是第三集"},
            "annotations": [
                {
                    "ground_truth": True,
                    "result": [
                        {"type": "taxonomy", "value": {"taxonomy": [["information", "external_sources"]]}},
                    ],
                },
                {"result": [{"type": "choices", "value": {"choices": ["others"]}}], "updated_at": "2027"},
            ],
        },
        {"id": 13, "data": {"text": "取消了"}, "annotations": [{"was_cancelled": True, "result": []}]},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    records = read_labelled(path, default_source="manual")
    assert [(r.id, r.labels, r.subcategories, r.source) for r in records] == [
        ("11", ("social",), ("curiosity",), "manual"),
        ("12", ("information",), ("external_sources",), "manual"),
    ]


def test_label_studio_json_min_export(tmp_path: Path) -> None:
    path = tmp_path / "min.json"
    path.write_text(json.dumps([{"id": 1, "text": "awsl", "label": "emotions_positive"}]), encoding="utf-8")
    (record,) = read_labelled(path)
    assert record.labels == ("emotions_positive",)
