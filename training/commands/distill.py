"""``danmaku-train distill``: a student of a trained emotion model (soft targets, teacher annealing),
or with ``--mode labels-only`` the same student on the labels alone.

Writes ``model/`` (and the teacher's logits under ``teacher/``) under ``--out`` (resumable).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import distill


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "distill", help="distil the emotion model into a student (optionally with fewer layers)"
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        action="append",
        required=True,
        help="trained model directory (e.g. train_v2 OUT/model); repeat for an ensemble (the first gives the student)",
    )
    parser.add_argument("--curated", type=Path, required=True, help="curated table with its split column")
    parser.add_argument("--texts", type=Path, help="unlabelled texts table (ingest OUT/texts.parquet); distill mode")
    parser.add_argument(
        "--exclude", type=Path, action="append", default=[], help="table whose texts stay out of the sample (test rows)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_stage_options(parser, distill)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, seed, _preprocessing = stage_settings(args, distill)
    summary = distill.distill_files(
        args.teacher,
        args.curated,
        args.out,
        settings=settings,
        seed=seed,
        unlabelled=args.texts,
        exclude=args.exclude,
        progress=not args.no_progress,
    )
    rows = summary["rows"]
    print(
        f"student ({settings.mode}) trained on {rows['train']} labelled + {rows['unlabelled']} unlabelled rows; "
        f"best epoch {summary['best_epoch']} (validation macro-F1 {summary['best_validation_score']})"
    )
    print(f"model: {summary['model']}")
    return 0
