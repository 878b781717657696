"""``danmaku-train evaluate``: score a bundle (through ONNX Runtime, as serving does) or a trained
model directory on a labelled-text table; JSON + Markdown report and PNG plots under ``--out``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import reported_errors


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
    parser.add_argument(
        "--negatives", choices=("routed", "all"), default="routed", help="information task: which rows are negatives"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    from training.evaluation.scoring import headline
    from training.stages.evaluate import evaluate_files

    report = evaluate_files(
        args.model,
        args.table,
        args.out,
        split=args.split,
        validation=args.validation,
        validation_split=args.validation_split,
        negatives=args.negatives,
        batch_size=args.batch_size,
        plots=not args.no_plots,
        progress=not args.no_progress,
    )
    figures = headline(report)
    print(
        f"{figures['head']} head on {figures['rows']} rows ({figures['thresholds']} thresholds): "
        f"macro-F1 {figures['macro_f1']:.3f}, micro-F1 {figures['micro_f1']:.3f}"
    )
    print(f"report: {args.out / 'report.md'}")
    return 0
