"""``danmaku-train train-v1``: sample the pseudo-labelled table, train BERT v1 on the sample.

Writes ``v1_train``, ``holdout`` and ``test`` tables and ``model/`` under ``--out``; a killed run
started again with the same arguments resumes after its last finished epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import train_v1


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train-v1", help="stage 3: train BERT v1 on a sample of the LLM labels; the rest is the holdout"
    )
    parser.add_argument("--labels", type=Path, required=True, help="labelled-text table (LLM/teacher labels)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_stage_options(parser, train_v1, table_format=True)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, seed, preprocessing = stage_settings(args, train_v1)
    summary = train_v1.train_v1_files(
        args.labels,
        args.out,
        settings=settings,
        preprocessing=preprocessing,
        seed=seed,
        table_format=args.format,
        progress=not args.no_progress,
    )
    rows = summary["rows"]
    print(f"v1 trained on {rows[train_v1.V1_TRAIN]} rows; holdout {rows[train_v1.HOLDOUT]} rows")
    print(f"model: {summary['model']}")
    return 0
