"""Kill -9 in the middle of ``danmaku-train llm-label``, resume, and get every label exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from tests.fixtures.fake_llm import FakeLLM, fake_labels, serve
from training.taxonomy import normalise_labels

REPO = Path(__file__).resolve().parents[3]
WORDS = ["哈哈", "这是哪里？", "因为下雨", "泪目", "前排", "好"]


def command(texts: Path, out: Path, url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "training.cli",
        "llm-label",
        str(texts),
        "--out",
        str(out),
        "--base-url",
        url,
        "--model",
        "fake",
        "--batch-size",
        "4",
        "--concurrency",
        "2",
        "--backoff",
        "0.01",
        "--no-progress",
    ]


def checkpoint_lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def test_sigkill_mid_run_then_resume_labels_every_id_exactly_once(tmp_path: Path) -> None:
    texts = tmp_path / "texts.jsonl"
    rows = [{"id": f"t{index:03d}", "text": f"{WORDS[index % len(WORDS)]} {index}"} for index in range(80)]
    texts.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "labels.parquet"
    checkpoint = tmp_path / "labels.checkpoint.jsonl"
    fake = FakeLLM(delay=0.2)
    with serve(fake) as url:
        process = subprocess.Popen(command(texts, out, url), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(checkpoint_lines(checkpoint)) < 8 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        done_at_kill = len(checkpoint_lines(checkpoint))
        assert 8 <= done_at_kill < len(rows), f"kill came too late or too early ({done_at_kill} lines)"
        assert not out.exists()
        with checkpoint.open("ab") as handle:
            handle.write(b'{"id": "t0')  # what a write torn by a crash looks like
        requests_before = len(fake.requests)

        resumed = subprocess.run(command(texts, out, url), cwd=REPO, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    ids = [json.loads(line)["id"] for line in checkpoint_lines(checkpoint)]
    assert sorted(ids) == sorted(row["id"] for row in rows), "every id exactly once in the checkpoint"
    table = pq.read_table(out).to_pylist()
    assert [record["id"] for record in table] == [row["id"] for row in rows]
    for record, row in zip(table, rows, strict=True):
        labels, subcategories, _ = normalise_labels(*fake_labels(row["text"]))
        assert (record["labels"], record["subcategories"]) == (list(labels), list(subcategories))
    resent = {text for request in fake.requests[requests_before:] for text in request["texts"]}
    labelled_before = {json.loads(line)["id"] for line in checkpoint_lines(checkpoint)[:done_at_kill]}
    assert not resent & {row["text"] for row in rows if row["id"] in labelled_before}, "done ids were sent again"
    report = json.loads((tmp_path / "labels.report.json").read_text())
    assert report["already_done"] == done_at_kill and report["labelled"] == len(rows) - done_at_kill
