"""``danmaku-serve classify-file`` as the Indexed Job runs it: killed with SIGKILL and run again, every row once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from service import cli

GUARD_S = 120.0
REPO = Path(__file__).resolve().parents[2]


def write_input(path: Path, count: int) -> list[str]:
    words = ["前方高能", "awsl", "哈哈哈哈哈哈", "这首曲子的作者是谁？", "打卡", "泪目", "2333333", "有人吗", "好听"]
    texts = [f"{words[i % len(words)]}{words[(i * 5) % len(words)]} {i}" for i in range(count)]
    pq.write_table(pa.table({"cid": list(range(count)), "text": texts}), path, row_group_size=500)
    return texts


def no_torch_path(tmp_path: Path) -> Path:
    """A folder whose torch and transformers fail on import: put first on PYTHONPATH, it proves neither is used."""
    poisoned = tmp_path / "no-torch"
    for name in ("torch", "transformers"):
        (poisoned / name).mkdir(parents=True)
        (poisoned / name / "__init__.py").write_text(
            f"raise ImportError('{name} must not be imported by the bulk path')"
        )
    return poisoned


def command(models: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "service.cli",
        "classify-file",
        f"--input={source}",
        f"--output={out}",
        f"--models-dir={models}",
        "--id-column=cid",
        "--no-progress",
        *extra,
    ]


def test_a_job_killed_mid_run_resumes_and_writes_every_row_exactly_once(tiny_models_dir: Path, tmp_path: Path) -> None:
    texts = write_input(tmp_path / "comments.parquet", 6000)
    out = tmp_path / "out"
    parts_dir = out / "comments.parquet"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(no_torch_path(tmp_path)), str(REPO)]),
        "DANMAKU_WARMUP_RUNS": "0",
        "DANMAKU_MAX_BATCH_SIZE": "16",
    }
    run = command(tiny_models_dir, tmp_path / "comments.parquet", out, "--chunk-rows=20")  # 300 parts

    first = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + GUARD_S
    while not (parts_dir.is_dir() and len(list(parts_dir.glob("chunk-*.parquet"))) >= 5):
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "no part written in time"
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait(GUARD_S)
    assert first.returncode == -signal.SIGKILL
    finished_before = len(list(parts_dir.glob("chunk-*.parquet")))
    assert 5 <= finished_before < 300, "the first run was not interrupted"
    assert not (out / "_manifests").exists()

    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=GUARD_S)
    assert second.returncode == 0, second.stderr
    assert (
        f"in 300 parts ({finished_before} kept from an earlier run, {300 - finished_before} written)" in second.stdout
    )

    table = ds.dataset(out, format="parquet").to_table().sort_by("row")
    assert table.column("row").to_pylist() == list(range(6000))  # every row, none twice
    assert table.column("text").to_pylist() == texts
    assert table.column("id").to_pylist() == [str(i) for i in range(6000)]
    assert table.column("label").null_count == 0
    assert not list(parts_dir.glob(".*.tmp"))


def test_the_shard_index_defaults_to_the_job_completion_index(
    tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_input(tmp_path / "in.parquet", 40)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("DANMAKU_WARMUP_RUNS", "0")
    status = cli.main(
        command(tiny_models_dir, tmp_path / "in.parquet", tmp_path / "out", "--num-shards=2", "--chunk-rows=10")[3:]
    )
    assert status == 0, capsys.readouterr().err
    assert "shard 1 of 2: 20 rows" in capsys.readouterr().out
    assert (tmp_path / "out" / "_manifests" / "shard-00001-of-00002.json").is_file()


@pytest.mark.parametrize(
    ("extra", "environment", "message"),
    [
        (["--num-shards=4"], {"JOB_COMPLETION_INDEX": "$(JOB_COMPLETION_INDEX)"}, "must be an integer"),
        (["--num-shards=4", "--shard-index=4"], {}, r"--shard-index must be in \[0, 3\]"),
        (["--text-column=comment"], {}, r"no column 'comment' \(--text-column\)"),
        (["--information-threshold=1.5"], {}, r"--information-threshold must be in \[0, 1\]"),
        (["--chunk-rows=0"], {}, "--chunk-rows must be at least 1"),
        ([], {"DANMAKU_MAX_BATCH_SIZE": "0"}, "DANMAKU_MAX_BATCH_SIZE='0'"),
    ],
)
def test_bad_arguments_and_input_exit_with_status_2_and_say_why(
    tiny_models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    environment: dict[str, str],
    message: str,
) -> None:
    write_input(tmp_path / "in.parquet", 10)
    monkeypatch.setenv("DANMAKU_WARMUP_RUNS", "0")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert cli.main(command(tiny_models_dir, tmp_path / "in.parquet", tmp_path / "out", *extra)[3:]) == 2
    error = capsys.readouterr().err
    assert error.startswith("danmaku-serve classify-file: ")
    assert re.search(message, error), error


def test_an_output_inside_the_input_folder_is_refused(
    tiny_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_input(tmp_path / "in.parquet", 10)
    assert cli.main(command(tiny_models_dir, tmp_path, tmp_path / "out")[3:]) == 2
    assert "is inside --input" in capsys.readouterr().err


def test_a_missing_bundle_and_a_changed_run_exit_with_status_2(
    tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_input(tmp_path / "in.parquet", 10)
    monkeypatch.setenv("DANMAKU_WARMUP_RUNS", "0")
    arguments = command(tmp_path / "no-models", tmp_path / "in.parquet", tmp_path / "out")[3:]
    assert cli.main(arguments) == 2
    assert "cannot load the models: " in capsys.readouterr().err
    arguments = command(tiny_models_dir, tmp_path / "in.parquet", tmp_path / "out")[3:]
    assert cli.main(arguments) == 0
    assert cli.main([*arguments, "--mode=recall"]) == 2
    assert (
        "holds results of a run with other parameters (mode: 'precision' there, 'recall' now" in capsys.readouterr().err
    )


def test_the_indexed_job_arguments_are_the_commands() -> None:
    job = yaml.safe_load((REPO / "deploy" / "k8s" / "jobs" / "bulk-classify" / "job.yaml").read_text(encoding="utf-8"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["danmaku-serve", "classify-file"]
    arguments = [argument.replace("$(JOB_COMPLETION_INDEX)", "7") for argument in container["args"]]
    parser, _ = cli.build_parser()
    parsed = parser.parse_args(["classify-file", *arguments])  # an unknown flag would exit here
    assert parsed.handler.__module__ == "service.commands.classify_file"
    assert (parsed.shard_index, parsed.num_shards) == ("7", job["spec"]["completions"])
    assert parsed.models_dir == Path("/models") and parsed.chunk_rows >= 1


def write_jsonl_with_bad_rows(path: Path, count: int, bad: set[int]) -> None:
    lines = [
        b'{"cid": %d, "text": "%s%s"}' % (n, f"好听 {n}".encode(), b"\xff" if n in bad else b"")
        for n in range(1, count + 1)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_one_bad_byte_fails_naming_the_line_unless_bad_rows_are_skipped(
    tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DANMAKU_WARMUP_RUNS", "0")
    source = tmp_path / "in.jsonl"
    write_jsonl_with_bad_rows(source, 300, {250, 7})
    assert cli.main(command(tiny_models_dir, source, tmp_path / "failed", "--chunk-rows=100")[3:]) == 2
    assert re.search(r"in\.jsonl:7: invalid UTF-8 byte 0xff", capsys.readouterr().err)

    out = tmp_path / "out"
    arguments = command(tiny_models_dir, source, out, "--chunk-rows=100", "--on-bad-rows=skip")[3:]
    assert cli.main(arguments) == 0
    assert "2 bad rows skipped" in capsys.readouterr().out
    manifest = json.loads(next((out / "_manifests").glob("*.json")).read_text(encoding="utf-8"))
    assert manifest["rejected_rows"] == 2 and manifest["rows"] == 300 and manifest["empty_texts"] == 0
    assert manifest["run"]["on_bad_rows"] == "skip"
    rejects = [
        json.loads(line)
        for path in sorted((out / "_rejects" / "in.jsonl").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert [(r["line"], r["row"]) for r in rejects] == [(7, 6), (250, 249)]
    assert all("invalid UTF-8 byte 0xff" in r["problem"] and r["raw"].endswith('\\xff"}') for r in rejects)
    table = ds.dataset(out, format="parquet").to_table().sort_by("row")
    assert table.num_rows == 300
    assert table.column("label").null_count == 2 and table.column("text")[249].as_py() is None
    # A second run resumes every part and counts the same rejects.
    assert cli.main(arguments) == 0
    assert "2 bad rows skipped" in capsys.readouterr().out
