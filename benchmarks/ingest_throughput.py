"""Ingest throughput and peak memory on a real dump (default: the 3.7M-row dd_center csv.gz).

    .venv/bin/python benchmarks/ingest_throughput.py [INPUT ...] [--out-dir DIR]

Prints comments/s (wall clock), comments per CPU second (user + system time of this process: the
figure to compare on a machine shared with other jobs), unique texts and the process's peak
resident memory (ru_maxrss). The outputs go to a temporary directory unless --out-dir is given.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
from pathlib import Path

from training.stages.ingest import ingest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "danmaku" / "dd_center_vtuber.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", type=Path, default=[SHARED])
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--buckets", type=int, default=32)
    args = parser.parse_args()
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out_dir or Path(scratch)
        report = ingest(
            args.inputs,
            comments_out=out / "comments.parquet",
            texts_out=out / "texts.parquet",
            malformed_out=out / "malformed.jsonl",
            chunk_rows=args.chunk_rows,
            buckets=args.buckets,
        )
        sizes = {name: (out / name).stat().st_size / 2**20 for name in ("comments.parquet", "texts.parquet")}
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(report.summary())
    print(f"CPU time {cpu:.1f} s: {report.comments / cpu:,.0f} comments per CPU second")
    print("output sizes: " + ", ".join(f"{name} {size:.0f} MiB" for name, size in sizes.items()))
    print(
        f"python {platform.python_version()} {platform.machine()}; chunk_rows {args.chunk_rows}, buckets {args.buckets}"
    )


if __name__ == "__main__":
    main()
