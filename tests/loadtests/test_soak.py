"""The soak profile's arithmetic, its memory sources, and a (very) short run of it against a real service."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadtests.soak import (
    MIB,
    Sample,
    main,
    metrics_reader,
    parse_duration,
    pid_reader,
    rss_from_metrics,
    slope_bytes_per_s,
    summarise,
)
from tests.loadtests.conftest import Server


def test_slope_and_summary_of_a_leak_that_starts_after_warm_up() -> None:
    # 100 MiB flat for 50 s, then +1 MiB per 10 s: +360 MiB/h in the second half.
    samples = [Sample(t, 100 * MIB + max(0, t - 50) * MIB // 10) for t in range(0, 101, 5)]
    summary = summarise(samples)
    assert (summary.start_mib, summary.end_mib, summary.max_mib, summary.growth_mib) == (100.0, 105.0, 105.0, 5.0)
    assert summary.second_half_slope_mib_per_hour == pytest.approx(360.0, rel=1e-6)
    assert 0 < summary.slope_mib_per_hour < 360.0
    assert slope_bytes_per_s([Sample(0, 5), Sample(0, 9)]) == 0.0
    assert summarise([Sample(0, MIB)]).slope_mib_per_hour == 0.0
    with pytest.raises(ValueError, match="no memory sample"):
        summarise([])


@pytest.mark.parametrize(("text", "seconds"), [("600", 600), ("90s", 90), ("10m", 600), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_rss_is_read_from_the_exposition() -> None:
    exposition = "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.17489664e+08\n"
    assert rss_from_metrics(exposition) == 117_489_664
    with pytest.raises(ValueError, match="no process_resident_memory_bytes"):
        rss_from_metrics("danmaku_queue_depth 0\n")


def test_both_memory_sources_agree_on_a_real_service(server: Server) -> None:
    from_process = pid_reader(server.pid)()
    from_metrics = metrics_reader(server.base + "/metrics", {})()
    assert from_process > 10 * MIB
    assert abs(from_metrics - from_process) / from_process < 0.1


def test_a_short_soak_records_memory_over_time_and_summarises(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "soak"
    status = main(
        [
            "--host",
            server.base,
            "--pid",
            str(server.pid),
            "--duration",
            "6s",
            "--interval",
            "1",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--out",
            str(out),
            "--auth-token-file",
            str(server.token_file),
            "--",
            "--danmaku-dir=",
            "--calm-wait=0.2",
        ]
    )
    assert status == 0, (out / "locust.log").read_text()
    with (out / "memory.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    times = [float(row["elapsed_s"]) for row in rows]
    assert len(rows) >= 6 and times == sorted(times) and times[-1] >= 6
    assert all(int(row["rss_bytes"]) > 10 * MIB for row in rows)
    report = json.loads((out / "soak_summary.json").read_text(encoding="utf-8"))
    assert report["memory"]["samples"] == len(rows)
    assert report["memory"]["max_mib"] >= report["memory"]["start_mib"] > 10
    assert report["locust_exit_code"] == 0
    assert report["traffic"]["requests_ok"] > 0 and report["traffic"]["requests_failed"] == 0
    assert "generated comments" in report["traffic"]["corpus"]
    assert (out / "locust.html").is_file() and (out / "locust_stats.csv").is_file()
