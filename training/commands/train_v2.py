"""``danmaku-train train-v2``: the emotion model on the curated set (class-weighted, early stopping).

Reads the ``split`` column written by curate; writes ``model/`` under ``--out`` (resumable).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import train_v2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train-v2", help="stage 6: train BERT v2 (the emotion model) on the curated set"
    )
    parser.add_argument("--curated", type=Path, required=True, help="curated table (curate OUT/curated.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_stage_options(parser, train_v2)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, seed, preprocessing = stage_settings(args, train_v2)
    summary = train_v2.train_v2_files(
        args.curated, args.out, settings=settings, preprocessing=preprocessing, seed=seed, progress=not args.no_progress
    )
    print(
        f"v2 trained on {summary['rows']['train']} rows; best epoch {summary['best_epoch']} "
        f"(validation macro-F1 {summary['best_validation_score']})"
    )
    print(f"model: {summary['model']}")
    return 0
