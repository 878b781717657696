"""``danmaku-train select-for-labelling`` on the tiny bundles: tasks, config and report written; clear errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.fixtures.labelled import synthetic_records
from training.cli import main

TEXTS = [r.text for r in synthetic_records(30, seed=2)]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def test_writes_tasks_config_and_report(
    tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a parquet table with its own column names; duplicates after normalisation (full-width, runs) collapse
    rows = [*TEXTS, "哈哈哈哈哈哈", "哈哈哈", "ＡＷＳＬ", "AWSL", "   "]
    table = tmp_path / "traffic.parquet"
    pq.write_table(pa.table({"comment": rows, "cid": [f"c{i}" for i in range(len(rows))]}), table)
    out = tmp_path / "labelling"
    args = ["select-for-labelling", "--table", str(table), "--text-column", "comment", "--id-column", "cid"]
    args += ["--models-dir", str(tiny_models_dir), "--count", "8", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    assert "8 of 32 distinct texts (34 comments)" in capsys.readouterr().out

    tasks = json.loads((out / "tasks.json").read_text(encoding="utf-8"))
    assert len(tasks) == 8
    assert len({t["data"]["text"] for t in tasks}) == 8
    assert all(t["data"]["comment_id"].startswith("c") and t["data"]["table"] == "traffic.parquet" for t in tasks)
    uncertainties = [t["data"]["uncertainty"] for t in tasks]
    assert uncertainties == sorted(uncertainties, reverse=True)
    config = ElementTree.fromstring((out / "label_config.xml").read_text(encoding="utf-8"))
    choices = {c.get("name"): {v.get("value") for v in c} for c in config.iter("Choices")}
    for t in tasks:
        (prediction,) = t["predictions"]
        assert prediction["model_version"] == "emotion=test-emotion-1 information=test-info-1"
        assert prediction["score"] == pytest.approx(1 - t["data"]["uncertainty"], abs=1e-3)
        for result in prediction["result"]:
            assert set(result["value"]["choices"]) <= choices[result["from_name"]]
        assert t["data"]["served_label"] in prediction["result"][0]["value"]["choices"]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["comments"] == 34 and report["distinct_texts"] == 32 and report["selected"] == 8
    assert sum(label["count"] for label in report["per_served_label"].values()) == 8
    assert report["models"]["versions"] == {"emotion": "test-emotion-1", "information": "test-info-1"}

    # the same seed, the same tasks
    again = tmp_path / "again"
    assert main([*args, "--out", str(again)]) == 0
    assert (again / "tasks.json").read_bytes() == (out / "tasks.json").read_bytes()


def test_disagreement_with_a_second_model_set(tiny_models_dir: Path, tmp_path: Path) -> None:
    table = _jsonl(tmp_path / "c.jsonl", [{"text": text} for text in TEXTS[:12]])
    out = tmp_path / "out"
    args = ["select-for-labelling", "--table", str(table), "--models-dir", str(tiny_models_dir), "--count", "4"]
    args += ["--compare-models-dir", str(tiny_models_dir), "--strategy", "disagreement", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["served_label_differs"] == 0  # the same bundles agree with themselves
    assert report["uncertainty"]["max"] == 0.0
    assert report["compared_models"]["dir"] == str(tiny_models_dir)


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([{"text": " "}, {"text": None}], [], "no comment to select from"),
        ([{"comment": "哈哈"}], [], "no column 'text'"),
        ([{"text": "哈哈"}], ["--count", "0"], "--count must be at least 1"),
        ([{"text": "哈哈"}], ["--strategy", "disagreement"], "needs a second model set"),
    ],
)
def test_bad_input_is_one_error_line(
    tiny_models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[dict[str, object]],
    extra: list[str],
    message: str,
) -> None:
    table = _jsonl(tmp_path / "c.jsonl", rows)
    args = ["select-for-labelling", "--table", str(table), "--models-dir", str(tiny_models_dir)]
    assert main([*args, "--out", str(tmp_path / "out"), "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
