"""``danmaku-train ingest INPUT... --out-dir DIR``: danmaku dumps -> comments + unique texts (Parquet)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import ingest


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ingest",
        help="stage 1: read Bilibili XML / video-hourly / text tables (optionally .gz) into Parquet tables",
        description="Writes DIR/comments.parquet (one row per comment), DIR/texts.parquet (unique texts with "
        "counts and stable ids), DIR/malformed.jsonl (every skipped record with file and line) and "
        "DIR/ingest-report.json. See docs/ingest.md.",
    )
    parser.add_argument("--out-dir", type=Path, required=True, help="output directory")
    add_stage_options(parser, ingest)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, _seed, _preprocessing = stage_settings(args, ingest)
    report = ingest.ingest(args.out_dir, settings=settings, progress=not args.no_progress)
    print(report.summary())
    return 0
