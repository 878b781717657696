"""The append-only checkpoint: complete lines survive, a torn last line is ignored and cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.llm.checkpoint import CheckpointError, CheckpointWriter, load_checkpoint


def test_appended_records_load_back(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CheckpointWriter(path) as writer:
        writer.append([{"id": "a", "labels": ["social"]}, {"id": "b", "labels": ["others"]}])
        writer.append([{"id": "c", "labels": ["information"], "text": "中文"}])
    assert list(load_checkpoint(path)) == ["a", "b", "c"]
    assert load_checkpoint(path)["c"]["text"] == "中文"
    assert load_checkpoint(tmp_path / "absent.jsonl") == {}


def test_a_torn_last_line_is_ignored_then_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "lab')
    assert list(load_checkpoint(path)) == ["a", "b"]
    with CheckpointWriter(path) as writer:
        writer.append([{"id": "c"}])
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n{"id": "c"}\n'


def test_a_torn_only_line_is_cut_to_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "a", "tex')
    assert load_checkpoint(path) == {}
    with CheckpointWriter(path) as writer:
        writer.append([{"id": "a"}])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"id": "a"}]


def test_duplicate_ids_keep_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "n": 1}\n{"id": "a", "n": 2}\n')
    assert load_checkpoint(path)["a"]["n"] == 1


def test_a_corrupt_middle_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(CheckpointError, match="line 2"):
        load_checkpoint(path)
    path.write_text('{"id": "a"}\n{"no_id": 1}\n')
    with pytest.raises(CheckpointError, match="line 2: record without a string 'id'"):
        load_checkpoint(path)
