"""``danmaku-train train-info``: the information model (information vs others) on manual labels.

Writes ``train.<format>``/``validation.<format>`` (the rows used, split 80/20 by class) and
``model/`` under ``--out`` (resumable).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import train_info


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train-info", help="stage 7: train the information-vs-others model on manual labels"
    )
    parser.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="manual labels (JSONL/CSV/Parquet/Label Studio JSON) or a curated table",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_stage_options(parser, train_info, table_format=True)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, seed, preprocessing = stage_settings(args, train_info)
    summary = train_info.train_info_files(
        args.labels,
        args.out,
        settings=settings,
        preprocessing=preprocessing,
        seed=seed,
        table_format=args.format,
        progress=not args.no_progress,
    )
    print(
        f"information model trained on {summary['rows']['train']} rows; best epoch {summary['best_epoch']} "
        f"(validation F1 {summary['best_validation_score']})"
    )
    print(f"model: {summary['model']}")
    return 0
