"""Where the load test's comments come from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.corpus import generate_texts, load_corpus


def test_without_shared_data_a_seeded_generated_set_is_used(tmp_path: Path) -> None:
    corpus = load_corpus(danmaku_dir=tmp_path / "absent", size=500, seed=4)
    assert corpus.description.startswith("500 generated comments")
    assert corpus.texts == generate_texts(500, seed=4) == load_corpus(danmaku_dir=None, size=500, seed=4).texts
    assert all(text.strip() and len(text) <= 200 for text in corpus.texts)
    assert len(set(corpus.texts)) > 100  # varied, not a handful of phrases
    assert generate_texts(50, seed=5) != generate_texts(50, seed=4)


def test_a_texts_file_replaces_the_corpus_blank_and_long_texts_handled(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    lines = [{"text": "好听"}, {"text": "  "}, {"text": None}, {"text": "长" * 300}, {"text": "打卡"}]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines), encoding="utf-8")
    corpus = load_corpus(texts_file=path, size=10, max_chars=50)
    assert sorted(corpus.texts) == sorted(["好听", "长" * 50, "打卡"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": " "}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="no non-blank text"):
        load_corpus(texts_file=empty)


@pytest.mark.shared_data
def test_real_danmaku_are_sampled_from_both_corpora(shared_data: Path) -> None:
    corpus = load_corpus(danmaku_dir=shared_data / "danmaku", size=2000, seed=1)
    assert corpus.description == "real danmaku: 1000 from dd_center_vtuber.csv.gz, 1000 from bilibili_xml/*.xml"
    assert len(corpus.texts) == 2000 and all(text.strip() and len(text) <= 200 for text in corpus.texts)
    assert corpus.texts == load_corpus(danmaku_dir=shared_data / "danmaku", size=2000, seed=1).texts
