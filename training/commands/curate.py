"""``danmaku-train curate``: the curated training set of BERT v2 (reference sampling, provenance, split).

Writes ``curated.<format>`` (every row with ``provenance`` and ``split``), ``report.json`` and
``report.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import curate
from training.tables import table_path


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "curate", help="stage 5: sample agreed/disagreed holdout rows + manual labels into v2's training set"
    )
    parser.add_argument("--holdout", type=Path, help="annotated holdout (agree OUT/holdout.jsonl); absent: manual only")
    parser.add_argument("--manual", type=Path, help="manual labels (JSONL/CSV/Parquet/Label Studio JSON)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_stage_options(parser, curate, table_format=True)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, seed, _preprocessing = stage_settings(args, curate)
    counts = curate.curate_files(
        args.holdout, args.manual, args.out, settings=settings, seed=seed, table_format=args.format
    )
    print(
        f"curated {counts['rows']} rows (train {counts['train']}, validation {counts['validation']}): {counts['kept']}"
    )
    print(f"table: {table_path(args.out, curate.CURATED_TABLE, args.format)}")
    return 0
