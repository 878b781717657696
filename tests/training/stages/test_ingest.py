"""Ingest: every input format, malformed records reported with lines, unique texts counted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from training.cli import main
from training.records import text_id
from training.stages.ingest import IngestReport, Settings, ingest

XML = """<?xml version="1.0" encoding="UTF-8"?><i><chatserver>chat.bilibili.com</chatserver><chatid>4242</chatid>\
<maxlimit>1500</maxlimit><source>k-v</source>
<d p="12.5,1,25,16777215,1443890459,0,b00ce6ae,1251471143">哈哈哈哈</d>
<d p="30.0,5,25,15772458,1443890487,0,cd89296b,1251472227">前方高能 &lt;注意&gt; &amp; 弹幕护体</d>
<d p="31.0,1,25,16777215">too few fields</d>
<d p="abc,1,25,16777215,1443890592,0,60a6542c,1251476377">bad onset</d>
<d p="40.0,1,25,16777215,1443890592,0,60a6542c,1251476378">   </d>
<d p="41.0,1,25,16777215,1443890593,0,60a6542c,1251476379">控制\x08字符</d>
<d p="42.0,1,25,16777215,1443890594,0,60a6542c,1251476380">跨
两行</d>
<d p="43.0,1,25,16777215,1443890595,0,5cc7c68c,1251480405">哈哈哈哈</d>
</i>
"""


def run_ingest(tmp_path: Path, inputs: list[Path], **options: Any) -> tuple[IngestReport, list[dict[str, Any]]]:
    out = tmp_path / "out"
    report = ingest(out, settings=Settings(inputs=inputs, **options), progress=False)
    return report, pq.read_table(out / "comments.parquet").to_pylist()


def malformed(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "out" / "malformed.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def unique_texts(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {row["text"]: row for row in pq.read_table(tmp_path / "out" / "texts.parquet").to_pylist()}


def test_bilibili_xml_fields_entities_and_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "4242.xml"
    path.write_text(XML, encoding="utf-8")
    report, comments = run_ingest(tmp_path, [path])
    assert [row["text"] for row in comments] == [
        "哈哈哈哈",
        "前方高能 <注意> & 弹幕护体",
        "控制字符",
        "跨\n两行",
        "哈哈哈哈",
    ]
    first = comments[0]
    assert first == {
        "video_id": "4242",
        "onset_s": 12.5,
        "mode": 1,
        "font_size": 25,
        "colour": 16777215,
        "sent_at": 1443890459,
        "pool": 0,
        "sender": "b00ce6ae",
        "row_id": 1251471143,
        "text": "哈哈哈哈",
        "text_id": text_id("哈哈哈哈"),
        "chat_id": "4242",
        "maxlimit": 1500,
        "collect_ymdh": None,
        "source_file": str(path),
        "line": 2,
    }
    assert [row["line"] for row in comments] == [2, 3, 7, 8, 10]
    problems = malformed(tmp_path)
    assert [(row["line"], row["reason"]) for row in problems] == [
        (4, "p attribute has 4 fields, expected 8: 31.0,1,25,16777215"),
        (5, "onset is not a number: abc"),
        (6, "empty text"),
    ]
    assert report.comments == 5 and report.malformed == 3 and report.unique_texts == 4
    assert report.malformed_by_reason == {
        "p attribute has N fields, expected N": 1,
        "onset is not a number": 1,
        "empty text": 1,
    }
    counted = unique_texts(tmp_path)
    assert counted["哈哈哈哈"] == {"id": text_id("哈哈哈哈"), "text": "哈哈哈哈", "count": 2, "videos": 1}


def test_xml_that_breaks_midway_keeps_what_came_before_and_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml.gz"
    text = XML.replace("</i>", "").replace('<d p="43.0', '<d p="43.0" <oops', 1)
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    report, comments = run_ingest(tmp_path, [path])
    assert len(comments) == 4
    (last,) = [row for row in malformed(tmp_path) if "XML" in row["reason"]]
    assert last["line"] == 10 and "rest of the file skipped" in last["reason"]
    assert report.files == 1


def test_video_hourly_jsonl_and_csv_with_json_or_python_danmu_lists(tmp_path: Path) -> None:
    good = [12.5, 1, 25, 16777215, 1443890459, 0, "abc123", 9001, "哈哈"]
    records = [
        {"video_id": "BV1", "collect_YMDH": "2024010112", "chat_id": "77", "maxlimit": 3000, "danmu_list": [good]},
        {"video_id": "BV2", "collect_YMDH": "2024010113", "chat_id": "78", "maxlimit": 3000, "danmu_list": [good[:8]]},
    ]
    jsonl = tmp_path / "hourly.jsonl"
    jsonl.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n{broken\n", encoding="utf-8")
    python_literal = (
        "[(1.0, 1, 25, 255, 1443890000, 0, 'ff', 1, '为什么？'), (2.0, 1, 25, 255, 1443890001, 0, 'ff', 2, '')]"
    )
    csv_path = tmp_path / "hourly.csv.gz"
    csv_text = (
        "video_id,collect_YMDH,chat_id,maxlimit,danmu_list\n"
        f'BV3,2024010114,79,1000,"{json.dumps([good], ensure_ascii=False).replace(chr(34), chr(34) * 2)}"\n'
        f'BV4,2024010115,80,1000,"{python_literal}"\n'
        "BV5,2024010116,81,1000,not a list at all\n"
    )
    csv_path.write_bytes(gzip.compress(csv_text.encode("utf-8")))
    report, comments = run_ingest(tmp_path, [jsonl, csv_path])
    assert [(row["video_id"], row["text"], row["line"]) for row in comments] == [
        ("BV1", "哈哈", 1),
        ("BV3", "哈哈", 2),
        ("BV4", "为什么？", 3),
    ]
    assert comments[0]["collect_ymdh"] == "2024010112" and comments[0]["chat_id"] == "77"
    assert comments[0]["row_id"] == 9001 and comments[0]["sender"] == "abc123"
    problems = [(Path(row["source_file"]).name, row["line"], row["reason"]) for row in malformed(tmp_path)]
    assert problems == [
        ("hourly.jsonl", 2, "danmu_list[0] is not a 9-field tuple (8)"),
        ("hourly.jsonl", 3, "invalid JSON: Expecting property name enclosed in double quotes"),
        ("hourly.csv.gz", 3, "danmu_list[1]: empty text"),
        ("hourly.csv.gz", 4, "danmu_list is neither JSON nor a Python literal: not a list at all"),
    ]
    assert unique_texts(tmp_path)["哈哈"]["count"] == 2 and unique_texts(tmp_path)["哈哈"]["videos"] == 2
    assert report.malformed_by_file == {str(jsonl): 2, str(csv_path): 2}


def test_text_tables_with_a_text_column_and_known_field_columns(tmp_path: Path) -> None:
    path = tmp_path / "dd.csv"
    path.write_text(
        "uploader_mid,aid,onset_s,sent_at,body\n"
        "1,46230434,12.8,2019-03-14 01:11:24,awsl\n"
        "1,46230434,oops,2019-03-14 01:16:59,awsl\n"
        "1,46230435,1.1,2019-03-14 01:36:13\n"
        '2,46230436,3.0,1552497384,"多行,\n文本"\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="no text column 'text'"):
        run_ingest(tmp_path, [path])
    report, comments = run_ingest(tmp_path, [path], text_column="body")
    assert [(row["video_id"], row["text"], row["onset_s"], row["sent_at"], row["line"]) for row in comments] == [
        ("46230434", "awsl", 12.8, 1552497084, 2),  # 01:11:24 Beijing time
        ("46230436", "多行,\n文本", 3.0, 1552497384, 5),
    ]
    assert [(row["line"], row["reason"].split(" (")[0]) for row in malformed(tmp_path)] == [
        (3, "onset is not a number: oops"),
        (4, "4 cells, expected 5"),
    ]
    assert report.comments == 2


def test_text_jsonl_with_a_chosen_video_column(tmp_path: Path) -> None:
    path = tmp_path / "texts.jsonl"
    path.write_text('{"comment": "你好", "room": 7}\n[1, 2]\n{"comment": 5, "room": 7}\n', encoding="utf-8")
    _, comments = run_ingest(tmp_path, [path], text_column="comment", video_column="room")
    assert [(row["video_id"], row["text"]) for row in comments] == [("7", "你好")]
    assert [row["reason"] for row in malformed(tmp_path)] == ["JSON line is not an object", "text is not a string: 5"]


def test_small_chunks_and_buckets_give_the_same_tables(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    rows = [{"text": f"评论{index % 37}", "video_id": str(index % 5)} for index in range(500)]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    report, comments = run_ingest(tmp_path, [path], chunk_rows=7, buckets=3)
    assert len(comments) == 500 and report.unique_texts == 37
    counted = pq.read_table(tmp_path / "out" / "texts.parquet").to_pylist()
    assert [row["id"] for row in counted] == sorted(row["id"] for row in counted)
    assert sum(row["count"] for row in counted) == 500
    assert {row["text"]: row["count"] for row in counted}["评论0"] == len(range(0, 500, 37))
    assert all(row["videos"] == 5 for row in counted)
    assert sorted((tmp_path / "out").iterdir()) == [
        tmp_path / "out" / name
        for name in ("comments.parquet", "ingest-report.json", "malformed.jsonl", "texts.parquet")
    ]


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.xml does not exist"):
        run_ingest(tmp_path, [tmp_path / "absent.xml"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown input format"):
        run_ingest(tmp_path, [tmp_path / "notes.txt"])
    with pytest.raises(ValueError, match="chunk_rows"):
        run_ingest(tmp_path, [tmp_path / "notes.txt"], chunk_rows=0)


def test_cli_writes_tables_and_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "xml"
    folder.mkdir()
    (folder / "a.xml").write_text(XML, encoding="utf-8")
    assert main(["ingest", str(folder), "--out-dir", str(tmp_path / "out"), "--no-progress"]) == 0
    report = json.loads((tmp_path / "out" / "ingest-report.json").read_text())
    assert report["comments"] == 5 and report["malformed"] == 3
    assert "ingested 5 comments (4 unique texts) from 1 file(s)" in capsys.readouterr().out


@pytest.mark.shared_data
def test_the_shared_bilibili_xml_corpus(shared_data: Path, tmp_path: Path) -> None:
    report, _ = run_ingest(tmp_path, [shared_data / "danmaku" / "bilibili_xml"])
    # 112,101 <d> elements, 14 of them with an empty text
    assert (report.files, report.comments, report.malformed) == (24, 112_087, 14)
    assert report.malformed_by_reason == {"empty text": 14}
    counted = pq.read_table(tmp_path / "out" / "texts.parquet")
    assert sum(counted.column("count").to_pylist()) == 112_087
