"""``danmaku-train ingest INPUT... --out-dir DIR``: danmaku dumps -> comments + unique texts (Parquet)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.ingest.readers import DEFAULT_TIMEZONE, FORMATS


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ingest",
        help="read Bilibili XML / video-hourly / text tables (optionally .gz) into Parquet tables",
        description="Writes DIR/comments.parquet (one row per comment), DIR/texts.parquet (unique texts with "
        "counts and stable ids), DIR/malformed.jsonl (every skipped record with file and line) and "
        "DIR/ingest-report.json. See docs/ingest.md.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="input files or directories (searched recursively)")
    parser.add_argument("--out-dir", type=Path, required=True, help="output directory")
    parser.add_argument("--format", dest="file_format", choices=("auto", *FORMATS), default="auto")
    parser.add_argument("--text-column", default="text", help="text column of CSV/JSONL text tables (default: text)")
    parser.add_argument("--video-column", default=None, help="video id column of text tables (default: guessed)")
    parser.add_argument(
        "--timezone", default=DEFAULT_TIMEZONE, help=f"zone of naive date-times (default: {DEFAULT_TIMEZONE})"
    )
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per Parquet write (memory bound)")
    parser.add_argument("--buckets", type=int, default=32, help="disk buckets for unique-text counting (1-256)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from training.stages.ingest import ingest

    out: Path = args.out_dir
    report = ingest(
        args.inputs,
        comments_out=out / "comments.parquet",
        texts_out=out / "texts.parquet",
        malformed_out=out / "malformed.jsonl",
        file_format=args.file_format,
        text_column=args.text_column,
        video_column=args.video_column,
        timezone=args.timezone,
        chunk_rows=args.chunk_rows,
        buckets=args.buckets,
        progress=not args.no_progress,
    )
    (out / "ingest-report.json").write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    print(report.summary())
    return 0
