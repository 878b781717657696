"""Reading input files in chunks: the three formats give the same rows; errors name the file and the problem."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.bulk.inputs import ChunkReader, InputError, InputFile, discover_inputs

# Written for these tests: awkward values a CSV or JSON reader could mangle.
TEXTS: list[str | None] = [
    "前方高能！！",
    "awsl",
    "",
    "NA",
    "null",
    "2333333",
    "第一行\n第二行",
    '带,逗号和"引号"',
    "   ",
    None,
    "这首曲子的作者是谁？",
]


def rows(count: int) -> list[tuple[str, str | None]]:
    return [(f"id-{index:04d}", TEXTS[index % len(TEXTS)]) for index in range(count)]


def write_parquet(path: Path, data: list[tuple[str, str | None]], row_group_size: int = 7) -> Path:
    table = pa.table({"cid": [int(i.split("-")[1]) for i, _ in data], "text": [text for _, text in data]})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_csv(path: Path, data: list[tuple[str, str | None]]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cid", "text", "extra"])
        writer.writerows([(int(i.split("-")[1]), "" if text is None else text, "x") for i, text in data])
    return path


def write_jsonl(path: Path, data: list[tuple[str, str | None]]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for index, (comment_id, text) in enumerate(data):
            handle.write(json.dumps({"cid": int(comment_id.split("-")[1]), "text": text}, ensure_ascii=False) + "\n")
            if index % 5 == 0:
                handle.write("\n")  # blank lines are not rows
    return path


def read_all(path: Path, *, chunk_rows: int, id_column: str | None = "cid") -> ChunkReader:
    return ChunkReader(discover_inputs(path)[0], chunk_rows=chunk_rows, text_column="text", id_column=id_column)


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("in.parquet", write_parquet),
        ("in.csv", write_csv),
        ("in.csv.gz", write_csv),
        ("in.jsonl", write_jsonl),
        ("in.jsonl.gz", write_jsonl),
    ],
)
@pytest.mark.parametrize("chunk_rows", [1, 5, 7, 100])
def test_every_format_yields_the_rows_in_order_in_chunks(
    tmp_path: Path, name: str, writer: object, chunk_rows: int
) -> None:
    data = rows(47)
    path = writer(tmp_path / name, data)  # type: ignore[operator]
    reader = read_all(path, chunk_rows=chunk_rows)
    chunks = list(reader.chunks(lambda index: True))
    assert reader.total_rows == 47
    assert [chunk.index for chunk in chunks] == list(range((47 + chunk_rows - 1) // chunk_rows))
    assert [chunk.start_row for chunk in chunks] == [index * chunk_rows for index in range(len(chunks))]
    assert all(chunk.rows == chunk_rows for chunk in chunks[:-1])
    got_texts = [text for chunk in chunks for text in chunk.texts]
    expected = [text for _, text in data]
    if name.startswith("in.csv"):
        expected = ["" if text is None else text for text in expected]  # CSV cannot tell null from empty
    assert got_texts == expected
    assert [comment_id for chunk in chunks for comment_id in chunk.ids] == [str(int(i[3:])) for i, _ in data]


@pytest.mark.parametrize("name", ["in.parquet", "in.csv.gz", "in.jsonl"])
def test_only_wanted_chunks_are_returned_and_the_total_is_still_counted(tmp_path: Path, name: str) -> None:
    writer = {"in.parquet": write_parquet, "in.csv.gz": write_csv, "in.jsonl": write_jsonl}[name]
    data = rows(50)
    path = writer(tmp_path / name, data)
    reader = read_all(path, chunk_rows=6, id_column=None)
    chunks = list(reader.chunks(lambda index: index % 3 == 1))
    assert [chunk.index for chunk in chunks] == [1, 4, 7]
    assert reader.total_rows == 50
    for chunk in chunks:
        assert chunk.ids == [None] * chunk.rows
        expected = [text for _, text in data[chunk.start_row : chunk.start_row + 6]]
        if name.startswith("in.csv"):
            expected = ["" if text is None else text for text in expected]
        assert chunk.texts == expected


def test_discovery_of_a_folder_skips_hidden_underscore_and_foreign_files(tmp_path: Path) -> None:
    write_parquet(tmp_path / "b.parquet", rows(3))
    (tmp_path / "2019").mkdir()
    write_csv(tmp_path / "2019" / "a.csv.gz", rows(3))
    write_jsonl(tmp_path / "c.ndjson", rows(3))
    (tmp_path / "_SUCCESS").touch()
    (tmp_path / ".b.parquet.tmp").touch()
    (tmp_path / "_tmp").mkdir()
    write_parquet(tmp_path / "_tmp" / "x.parquet", rows(3))
    (tmp_path / "README.md").write_text("not data")
    found = discover_inputs(tmp_path)
    assert [(file.key, file.format) for file in found] == [
        ("2019/a.csv.gz", "csv"),
        ("b.parquet", "parquet"),
        ("c.ndjson", "jsonl"),
    ]
    assert all(file.size_bytes == file.path.stat().st_size for file in found)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.parquet", "no such file or directory"),
        (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "unsupported file type"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no input file"),
    ],
)
def test_discovery_errors_name_the_path(tmp_path: Path, setup: object, message: str) -> None:
    path = setup(tmp_path)  # type: ignore[operator]
    with pytest.raises(InputError, match=message) as caught:
        discover_inputs(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("name", ["in.parquet", "in.csv", "in.jsonl"])
def test_a_missing_column_is_named_with_the_columns_there(tmp_path: Path, name: str) -> None:
    writer = {"in.parquet": write_parquet, "in.csv": write_csv, "in.jsonl": write_jsonl}[name]
    path = writer(tmp_path / name, rows(5))
    reader = ChunkReader(discover_inputs(path)[0], chunk_rows=2, text_column="comment", id_column=None)
    with pytest.raises(InputError, match=r"no column 'comment' \(--text-column\); it has \[.*'text'") as caught:
        list(reader.chunks(lambda index: True))
    assert str(path) in str(caught.value)
    reader = ChunkReader(discover_inputs(path)[0], chunk_rows=2, text_column="text", id_column="uid")
    with pytest.raises(InputError, match=r"no column 'uid' \(--id-column\)"):
        list(reader.chunks(lambda index: True))


def test_a_parquet_text_column_of_numbers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [1, 2, 3]}), path)
    reader = ChunkReader(discover_inputs(path)[0], chunk_rows=2, text_column="text", id_column=None)
    with pytest.raises(InputError, match="column 'text' holds int64, expected strings"):
        list(reader.chunks(lambda index: True))


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    reader = ChunkReader(discover_inputs(path)[0], chunk_rows=2, text_column="text", id_column=None)
    with pytest.raises(InputError, match="not a readable Parquet file"):
        list(reader.chunks(lambda index: True))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r":3: not valid JSON"),
        ('["a list"]', r":3: expected a JSON object, got list"),
        ('{"text": 42}', r":3: 'text' is a int, expected a string"),
        ('{"text": "ok", "cid": {"a": 1}}', r":3: 'cid' is a dict, expected a scalar"),
    ],
)
def test_a_bad_jsonl_line_is_named_with_its_line_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a", "cid": 1}\n\n' + line + "\n", encoding="utf-8")
    reader = ChunkReader(discover_inputs(path)[0], chunk_rows=10, text_column="text", id_column="cid")
    with pytest.raises(InputError, match=message):
        list(reader.chunks(lambda index: True))


def test_a_csv_row_with_too_many_fields_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("cid,text\n1,好\n2,好,多余\n", encoding="utf-8")
    reader = ChunkReader(InputFile(path, "in.csv", "csv", 0), chunk_rows=10, text_column="text", id_column=None)
    with pytest.raises(InputError, match="CSV parse error"):
        list(reader.chunks(lambda index: True))


def _lines_with_bad_bytes(count: int, bad: set[int]) -> bytes:
    """JSONL of ``count`` rows; the rows whose 1-based number is in ``bad`` carry an invalid UTF-8 byte."""
    lines = []
    for number in range(1, count + 1):
        text = f"评论 {number}".encode()
        lines.append(b'{"cid": %d, "text": "%s%s"}' % (number, text, b"\xff" if number in bad else b""))
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("name", ["in.jsonl", "in.jsonl.gz"])
def test_invalid_utf8_in_one_jsonl_line_names_the_line(tmp_path: Path, name: str) -> None:
    data = _lines_with_bad_bytes(3000, {2500})
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    reader = ChunkReader(discover_inputs(path)[0], chunk_rows=1000, text_column="text", id_column="cid")
    with pytest.raises(InputError, match=r"in\.jsonl(\.gz)?:2500: invalid UTF-8 byte 0xff"):
        list(reader.chunks(lambda index: True))


def test_invalid_utf8_in_one_csv_text_names_the_data_row(tmp_path: Path) -> None:
    rows = [b"cid,text"] + [b"%d,ok %d%s" % (n, n, b"\xfe" if n == 2500 else b"") for n in range(1, 3001)]
    path = tmp_path / "in.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    reader = ChunkReader(discover_inputs(path)[0], chunk_rows=1000, text_column="text", id_column="cid")
    with pytest.raises(InputError, match=r"in\.csv: data row 2500: invalid UTF-8 byte 0xfe"):
        list(reader.chunks(lambda index: True))


@pytest.mark.parametrize("name", ["in.jsonl", "in.csv"])
def test_skipped_bad_rows_keep_their_place_and_are_handed_over(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        data = _lines_with_bad_bytes(30, {5, 25})
        data = data.replace(b'{"cid": 12, "text": "\xe8\xaf\x84\xe8\xae\xba 12"}', b"{broken")
        path.write_bytes(data)
        bad = {4: 5, 11: 12, 24: 25}  # row -> line
    else:
        rows = [b"cid,text"] + [b"%d,ok %d%s" % (n, n, b"\xfe" if n in (5, 25) else b"") for n in range(1, 31)]
        path.write_bytes(b"\n".join(rows) + b"\n")
        bad = {4: None, 24: None}
    reader = ChunkReader(
        discover_inputs(path)[0], chunk_rows=10, text_column="text", id_column="cid", on_bad_rows="skip"
    )
    chunks = list(reader.chunks(lambda index: True))
    assert [chunk.rows for chunk in chunks] == [10, 10, 10] and reader.total_rows == 30
    rejects = [reject for chunk in chunks for reject in chunk.rejects]
    assert {reject.row: reject.line for reject in rejects} == bad
    texts = [text for chunk in chunks for text in chunk.texts]
    ids = [cid for chunk in chunks for cid in chunk.ids]
    for row in bad:
        assert texts[row] is None and ids[row] is None
    assert texts[0] is not None and texts[29] is not None
    assert all(reject.raw for reject in rejects)
