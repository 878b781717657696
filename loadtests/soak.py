"""Soak profile: Locust for a long time against a running service, recording the service's memory over time.

    python loadtests/soak.py --host http://127.0.0.1:8000 --pid "$(pgrep -f 'danmaku-serve' | head -1)" \\
        --duration 10m --users 8 --out runs/soak

The memory comes from the process itself (``--pid``: resident set size of it and its children, with psutil)
or from the service's ``/metrics`` (``--metrics-url``: ``process_resident_memory_bytes``; what you have for a
pod behind ``kubectl port-forward``). Every ``--interval`` seconds one row goes to ``<out>/memory.csv``; at the end
the script prints and writes (``<out>/soak_summary.json``) the start/end/max resident memory, its slope over the
whole run and over the second half (a leak keeps rising after warm-up; caches and allocator arenas level off),
and Locust's figures. Locust's own CSV/HTML go to ``<out>/locust*``. Arguments after ``--`` go to Locust.

Exit status: Locust's (1 when a request failed); 3 when ``--max-slope-mib-per-hour`` is given and the second-half
slope is above it.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
MIB = 1024 * 1024
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def parse_duration(text: str) -> float:
    """'600', '600s', '10m', '1.5h' -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 600, 10m, 1h)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    rss_bytes: int


def slope_bytes_per_s(samples: Sequence[Sample]) -> float:
    """Least-squares slope of resident memory over time; 0 with fewer than two distinct times."""
    if len(samples) < 2:
        return 0.0
    mean_t = sum(sample.elapsed_s for sample in samples) / len(samples)
    mean_m = sum(sample.rss_bytes for sample in samples) / len(samples)
    spread = sum((sample.elapsed_s - mean_t) ** 2 for sample in samples)
    if spread == 0:
        return 0.0
    return sum((sample.elapsed_s - mean_t) * (sample.rss_bytes - mean_m) for sample in samples) / spread


@dataclass(frozen=True)
class MemorySummary:
    samples: int
    duration_s: float
    start_mib: float
    end_mib: float
    min_mib: float
    max_mib: float
    growth_mib: float
    slope_mib_per_hour: float
    second_half_slope_mib_per_hour: float


def summarise(samples: Sequence[Sample]) -> MemorySummary:
    if not samples:
        raise ValueError("no memory sample was taken")
    rss = [sample.rss_bytes for sample in samples]
    second_half = [sample for sample in samples if sample.elapsed_s >= samples[-1].elapsed_s / 2]
    return MemorySummary(
        samples=len(samples),
        duration_s=round(samples[-1].elapsed_s, 1),
        start_mib=round(rss[0] / MIB, 1),
        end_mib=round(rss[-1] / MIB, 1),
        min_mib=round(min(rss) / MIB, 1),
        max_mib=round(max(rss) / MIB, 1),
        growth_mib=round((rss[-1] - rss[0]) / MIB, 1),
        slope_mib_per_hour=round(slope_bytes_per_s(samples) * 3600 / MIB, 2),
        second_half_slope_mib_per_hour=round(slope_bytes_per_s(second_half) * 3600 / MIB, 2),
    )


def rss_from_metrics(text: str) -> int:
    """``process_resident_memory_bytes`` from a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return int(float(line.split()[1]))
    raise ValueError("the exposition has no process_resident_memory_bytes (not Linux, or not this service?)")


def pid_reader(pid: int) -> Callable[[], int]:
    import psutil

    process = psutil.Process(pid)

    def read() -> int:
        total = 0
        for member in [process, *process.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    read()  # fail now if the PID is wrong
    return read


def metrics_reader(url: str, headers: dict[str, str]) -> Callable[[], int]:
    import httpx

    def read() -> int:
        response = httpx.get(url, headers=headers, timeout=10)
        response.raise_for_status()
        return rss_from_metrics(response.text)

    read()
    return read


def locust_figures(prefix: Path) -> dict[str, Any]:
    """The /classify and 429 rows of Locust's final stats CSV."""
    path = Path(f"{prefix}_stats.csv")
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    figures: dict[str, Any] = {}
    for name in ("/classify", "/classify [429 expected]", "Aggregated"):
        row = rows.get(name)
        if row is not None:
            figures[name] = {
                key: row[key]
                for key in ("Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%", "Max Response Time")
            }
    return figures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", required=True, help="base URL of the service, e.g. http://127.0.0.1:8000")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pid", type=int, help="PID of the service process (same machine)")
    source.add_argument("--metrics-url", help="the service's /metrics URL (process_resident_memory_bytes)")
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("10m"), help="run time (10m)")
    parser.add_argument("--users", type=int, default=8, help="Locust users (8)")
    parser.add_argument("--spawn-rate", type=float, default=2.0, help="users started per second (2)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between memory samples (5)")
    parser.add_argument("--out", type=Path, default=Path("runs/soak"), help="output folder (runs/soak)")
    parser.add_argument("--auth-token-file", help="bearer token file, for /classify (and a protected /metrics)")
    parser.add_argument("--max-slope-mib-per-hour", type=float, help="exit 3 above this second-half slope")
    parser.add_argument("locust_args", nargs="*", help="after --: more Locust options (e.g. --burst-every 60)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    headers: dict[str, str] = {}
    token_args: list[str] = []
    if args.auth_token_file:
        headers["Authorization"] = "Bearer " + Path(args.auth_token_file).read_text(encoding="utf-8").strip()
        token_args = ["--auth-token-file", str(args.auth_token_file)]
    read_rss = pid_reader(args.pid) if args.pid is not None else metrics_reader(args.metrics_url, headers)

    prefix = args.out / "locust"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        f"{int(args.duration)}s",
        "--host",
        args.host,
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--summary-file",
        f"{prefix}_summary.json",
        *token_args,
        *args.locust_args,
    ]
    samples: list[Sample] = []
    started = time.monotonic()
    with (
        (args.out / "memory.csv").open("w", encoding="utf-8", newline="") as handle,
        open(args.out / "locust.log", "w", encoding="utf-8") as log,
    ):
        writer = csv.writer(handle)
        writer.writerow(["elapsed_s", "rss_bytes", "rss_mib"])

        def sample() -> None:
            rss = read_rss()
            samples.append(Sample(time.monotonic() - started, rss))
            writer.writerow([f"{samples[-1].elapsed_s:.1f}", rss, f"{rss / MIB:.1f}"])
            handle.flush()

        sample()
        locust = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        print(f"soak: {args.users} users for {args.duration:.0f} s against {args.host}; memory every {args.interval} s")
        next_at = time.monotonic() + args.interval
        while locust.poll() is None:
            time.sleep(max(0.0, min(1.0, next_at - time.monotonic())))
            if time.monotonic() >= next_at:
                sample()
                next_at += args.interval
        sample()

    memory = summarise(samples)
    locust_summary: dict[str, Any] = {}
    summary_path = Path(f"{prefix}_summary.json")
    if summary_path.is_file():
        locust_summary = json.loads(summary_path.read_text(encoding="utf-8"))
    report = {
        "memory": asdict(memory),
        "traffic": locust_summary,
        "locust": locust_figures(prefix),
        "locust_exit_code": locust.returncode,
    }
    (args.out / "soak_summary.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(
        f"memory (RSS): start {memory.start_mib} MiB, end {memory.end_mib} MiB, max {memory.max_mib} MiB, "
        f"growth {memory.growth_mib:+} MiB; slope {memory.slope_mib_per_hour:+} MiB/h over the run, "
        f"{memory.second_half_slope_mib_per_hour:+} MiB/h over the second half ({memory.samples} samples)"
    )
    if locust_summary:
        print(
            f"traffic: {locust_summary['comments_classified']} comments in {locust_summary['requests_ok']} requests "
            f"({locust_summary['comments_per_s']} comments/s), {locust_summary['requests_overloaded']} expected 429s, "
            f"{locust_summary['requests_failed']} failed"
        )
    print(f"files: {args.out}/memory.csv, soak_summary.json, locust_stats.csv, locust.html, locust.log")
    if locust.returncode != 0:
        return locust.returncode
    if args.max_slope_mib_per_hour is not None and memory.second_half_slope_mib_per_hour > args.max_slope_mib_per_hour:
        print(f"memory keeps growing: {memory.second_half_slope_mib_per_hour} MiB/h > {args.max_slope_mib_per_hour}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
