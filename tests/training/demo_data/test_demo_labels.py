"""The packaged demo labelled set: schema, uniqueness, coverage, provenance; and its validator."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from training.demo_data import demo_labels_path, load_demo_labels
from training.demo_data.report import (
    duplicate_key,
    generated_block,
    label_counts,
    markdown_summary,
    replace_generated_block,
    validate,
)
from training.records import LabelledText
from training.taxonomy import MAIN_LABELS, PARENT_OF, SCHEMA, SUB_LABELS, normalise_labels

# A verbatim match shorter than this is the slang itself (草, 泪目, 前排), not a copied line.
PROVENANCE_MIN_CHARS = 6


@pytest.fixture(scope="module")
def records() -> list[LabelledText]:
    return load_demo_labels()


def test_the_packaged_file_is_found() -> None:
    path = demo_labels_path()
    assert path.is_file()
    assert path.name == "labels.jsonl"
    assert path.parent.name == "demo_data"


def test_every_row_is_schema_valid_and_already_normalised(records: list[LabelledText]) -> None:
    for record in records:
        assert record.labels, record
        assert set(record.labels) <= set(MAIN_LABELS), record
        assert set(record.subcategories) <= set(SUB_LABELS), record
        assert normalise_labels(record.labels, record.subcategories) == (record.labels, record.subcategories, ()), (
            record
        )
        assert record.source == "manual", record
        assert record.text.strip(), record


def test_exactly_one_subcategory_per_main_label(records: list[LabelledText]) -> None:
    for record in records:
        parents = Counter(PARENT_OF[sub] for sub in record.subcategories)
        assert parents == Counter(record.labels), record


def test_ids_are_unique(records: list[LabelledText]) -> None:
    ids = [record.id for record in records]
    assert len(ids) == len(set(ids))
    assert all(record_id.startswith("demo-") for record_id in ids)


def test_no_duplicate_texts_after_nfkc_and_whitespace(records: list[LabelledText]) -> None:
    keys = Counter(duplicate_key(record.text) for record in records)
    assert [key for key, count in keys.items() if count > 1] == []


def test_the_validator_finds_nothing(records: list[LabelledText]) -> None:
    # Also covers duplicates after the models' preprocessing (哈哈哈哈哈 and 哈哈哈哈哈哈哈 are one example).
    assert validate(records) == []


def test_minimum_counts(records: list[LabelledText]) -> None:
    mains, subs = label_counts(records)
    assert len(records) >= 1000
    assert mains["information"] >= 250
    assert set(mains) == set(MAIN_LABELS)
    present = [sub for sub in SUB_LABELS if subs[sub] > 0]
    assert len(present) >= 0.9 * len(SUB_LABELS)
    assert {sub: subs[sub] for sub in present if subs[sub] < 8} == {}
    assert all(subs[sub] > 0 for sub in SCHEMA["information"])


def test_mostly_single_label_with_a_few_clear_pairs(records: list[LabelledText]) -> None:
    two_labels = sum(1 for record in records if len(record.labels) == 2)
    assert all(len(record.labels) <= 2 for record in records)
    assert 0.01 * len(records) <= two_labels <= 0.06 * len(records)


def test_mostly_short_like_live_traffic(records: list[LabelledText]) -> None:
    lengths = [len(duplicate_key(record.text)) for record in records]
    assert sum(2 <= length <= 15 for length in lengths) >= 0.7 * len(lengths)
    assert sum(20 <= length <= 60 for length in lengths) >= 30


def test_the_readme_tables_are_current(records: list[LabelledText]) -> None:
    readme = (demo_labels_path().parent / "README.md").read_text(encoding="utf-8")
    assert generated_block(readme) == markdown_summary(records), (
        "training/demo_data/README.md is stale: run python scripts/demo_data_stats.py --write-readme"
    )


@pytest.mark.shared_data
def test_no_text_is_copied_from_the_teacher_corpus(records: list[LabelledText], shared_data: Path) -> None:
    teacher_file = shared_data / "teacher" / "teacher_labels.jsonl"
    with teacher_file.open(encoding="utf-8") as lines:
        teacher_texts = {duplicate_key(json.loads(line)["text"]) for line in lines if line.strip()}
    assert len(teacher_texts) > 1000  # the file really was read
    copied = [
        record.text
        for record in records
        if len(duplicate_key(record.text)) >= PROVENANCE_MIN_CHARS and duplicate_key(record.text) in teacher_texts
    ]
    assert copied == []


# --- the validator and the loader on deliberately broken input -------------------------------------------------


def _row(record_id: str, text: str, labels: tuple[str, ...], subs: tuple[str, ...]) -> LabelledText:
    return LabelledText(id=record_id, text=text, labels=labels, subcategories=subs, source="manual")


def test_the_validator_names_each_broken_row() -> None:
    rows = [
        _row("ok", "这是什么歌？", ("social",), ("curiosity",)),
        _row("unknown", "好耶", ("happy",), ("joy",)),
        _row("no-sub", "卧槽", ("emotions_negative",), ()),
        _row("two-subs", "笑死，太强了", ("emotions_positive",), ("admiration", "joy")),
        _row("order", "感谢科普，原来如此", ("emotions_positive", "information"), ("domain_knowledge", "gratitude")),
        _row("ok", "打卡", ("social",), ("social_presence",)),
        _row("width", "这是什么歌?", ("social",), ("curiosity",)),
        _row("runs", "哈哈哈哈哈哈哈哈", ("emotions_positive",), ("joy",)),
        _row("runs-too", "哈哈哈哈", ("emotions_positive",), ("joy",)),
        _row("orphan", "前排", ("social",), ("social_presence", "joy")),
    ]
    problems = "\n".join(validate(rows))
    assert "unknown: unknown main label(s) ['happy']" in problems
    assert "no-sub: main label 'emotions_negative' has 0 sub-categories" in problems
    assert "two-subs: main label 'emotions_positive' has 2 sub-categories" in problems
    assert "order: labels ['emotions_positive', 'information']" in problems
    assert "ok: duplicate id" in problems
    assert "width: text '这是什么歌?' duplicates ok (after NFKC + whitespace)" in problems
    assert "runs-too: text '哈哈哈哈' duplicates runs after the models' preprocessing" in problems
    assert "orphan: " in problems
    assert validate(rows[:1]) == []


def test_the_validator_checks_the_source() -> None:
    row = LabelledText(id="a", text="泪目", labels=("emotions_positive",), subcategories=("moved",), source="llm")
    assert validate([row]) == ["a: source 'llm', expected 'manual'"]
    assert validate([row], expected_source=None) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "x", "text": "草", "labels": ["social"], "source": "manual"}', "missing column(s) subcategories"),
        ('{"id": "x", "text": "草", "labels": "joy", "subcategories": [], "source": ""}', "'labels' must be a list"),
        ('{"id": 7, "text": "草", "labels": [], "subcategories": [], "source": "manual"}', "'id' must be a string"),
    ],
)
def test_the_loader_rejects_malformed_lines(tmp_path: Path, line: str, message: str) -> None:
    good = '{"id": "g", "text": "前排", "labels": ["social"], "subcategories": ["social_presence"], "source": "manual"}'
    path = tmp_path / "labels.jsonl"
    path.write_text(good + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_demo_labels(path)
    assert f"{path}:3" in str(error.value)


def test_the_loader_keeps_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    row = {"id": "g", "text": "前排", "labels": ["social"], "subcategories": ["social_presence"], "source": "manual"}
    path.write_text(json.dumps({**row, "split": "train"}, ensure_ascii=False) + "\n", encoding="utf-8")
    [record] = load_demo_labels(path)
    assert record.labels == ("social",)
    assert record.extra == {"split": "train"}


def test_the_readme_block_is_replaced_between_its_markers() -> None:
    readme = (demo_labels_path().parent / "README.md").read_text(encoding="utf-8")
    replaced = replace_generated_block(readme, "new tables\n")
    assert generated_block(replaced) == "new tables\n"
    assert replaced.split("new tables")[0] == readme.split(generated_block(readme))[0]
    with pytest.raises(ValueError, match="no generated block"):
        replace_generated_block("# a README without markers\n", "x")
