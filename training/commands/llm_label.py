"""``danmaku-train llm-label TEXTS --out OUT --base-url URL --model NAME``: LLM pseudo-labels with resume."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import llm_label


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "llm-label",
        help="stage 2: label unique texts with an LLM behind an OpenAI-compatible endpoint (resumable)",
        description="Sends the texts in batches to POST {base-url}/chat/completions and writes the labelled-text "
        "table. Finished labels are appended to a checkpoint (default OUT.checkpoint.jsonl); running the same "
        "command again after a crash resumes. See docs/llm-labelling.md.",
    )
    parser.add_argument(
        "texts", type=Path, help="texts table: ingest's texts.parquet, or .jsonl/.csv with a text column"
    )
    parser.add_argument("--out", type=Path, required=True, help="labelled-text table to write (.parquet or .jsonl)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: OUT with .checkpoint.jsonl")
    parser.add_argument("--report", type=Path, default=None, help="JSON report (default: OUT with .report.json)")
    parser.add_argument("--id-column", default="id", help="id column of the texts table")
    parser.add_argument("--text-column", default="text", help="text column of the texts table")
    add_stage_options(parser, llm_label)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    from training.llm.client import EndpointError
    from training.llm.tables import read_texts_table

    settings, seed, _preprocessing = stage_settings(args, llm_label)
    texts = read_texts_table(
        args.texts,
        id_column=args.id_column,
        text_column=args.text_column,
        limit=settings.limit,
        sample=settings.sample,
        seed=seed,
    )
    try:
        result = llm_label.label_files(
            texts,
            args.out,
            settings=settings,
            checkpoint=args.checkpoint,
            report=args.report,
            progress=not args.no_progress,
        )
    except EndpointError as error:
        print(f"llm-label stopped: {error}\nFinished labels are kept in the checkpoint; run again to resume.")
        return 2
    print(result.report.summary())
    print(f"{len(result.records):,} labelled texts written to {args.out}")
    return 0 if result.report.failed_items == 0 else 1
