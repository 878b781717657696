"""``danmaku-train evaluate``: score a bundle (through ONNX Runtime, as serving does) or a trained
model directory on a labelled-text table; JSON + Markdown report and PNG plots under ``--out``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_settings_options, reported_errors, settings_from_args
from training.stages import evaluate, train_info


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate", help="stage 9: per-class P/R/F1, threshold tuning and sweep, PR curves, confusion"
    )
    parser.add_argument("--model", type=Path, required=True, help="bundle directory or trained model directory")
    parser.add_argument("--table", type=Path, required=True, help="labelled-text table to score")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument("--split", help="score only rows whose 'split' column has this value (e.g. validation)")
    parser.add_argument("--validation", type=Path, help="table to tune per-class thresholds on (reported as 'tuned')")
    parser.add_argument("--validation-split", help="rows of --validation with this 'split' value (e.g. validation)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_settings_options(parser, evaluate.Settings, only=("batch_size", "plots"))
    add_settings_options(parser, train_info.Settings, only=("negatives",))  # the information task's negatives
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    from training.evaluation.scoring import headline

    report = evaluate.evaluate_files(
        args.model,
        args.table,
        args.out,
        settings=settings_from_args(args, evaluate.Settings, key="evaluate"),
        negatives=settings_from_args(args, train_info.Settings, key="train_info").negatives,
        split=args.split,
        validation=args.validation,
        validation_split=args.validation_split,
        progress=not args.no_progress,
    )
    figures = headline(report)
    print(
        f"{figures['head']} head on {figures['rows']} rows ({figures['thresholds']} thresholds): "
        f"macro-F1 {figures['macro_f1']:.3f}, micro-F1 {figures['micro_f1']:.3f}"
    )
    print(f"report: {args.out / 'report.md'}")
    return 0
