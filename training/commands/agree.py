"""``danmaku-train agree``: v1 predicts the holdout; agreement with the LLM labels, as a report.

Writes ``holdout.<format>`` (the holdout with ``v1_labels``, ``agreed``...: the input of curate),
``report.json`` and ``report.md`` (agreement before/after normalisation, per category, and v1's
per-class figures against the normalised LLM labels) under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import agree


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "agree", help="stage 4: v1 predicts the holdout; agreement with the LLM labels before/after normalisation"
    )
    parser.add_argument("--model", type=Path, required=True, help="v1 model directory (train-v1 OUT/model)")
    parser.add_argument("--holdout", type=Path, required=True, help="holdout table (train-v1 OUT/holdout.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_stage_options(parser, agree, table_format=True)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, _seed, _preprocessing = stage_settings(args, agree)
    report = agree.agree_files(
        args.model, args.holdout, args.out, settings=settings, table_format=args.format, progress=not args.no_progress
    )
    before, after = report["before_normalisation"], report["after_normalisation"]
    print(
        f"agreement on {report['rows']} rows: {100 * before['agreement']:.2f}% before normalisation, "
        f"{100 * after['agreement']:.2f}% after ({after['agreed']} agreed)"
    )
    print(f"report: {args.out / 'report.md'}")
    return 0
