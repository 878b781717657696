"""``danmaku-train train-v1``: sample the pseudo-labelled table, train BERT v1 on the sample.

Writes ``v1_train``, ``holdout`` and ``test`` tables and ``model/`` under ``--out``; a killed run
started again with the same arguments resumes after its last finished epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.text import Preprocessing
from training.commands.options import (
    add_common_options,
    add_settings_options,
    config_section,
    reported_errors,
    settings_from_args,
)
from training.stages.train_v1 import TrainV1Settings

HOLDOUT_TABLE = "holdout"
TRAIN_TABLE = "v1_train"
TEST_TABLE = "test"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train-v1", help="stage 3: train BERT v1 on a sample of the LLM labels; the rest is the holdout"
    )
    parser.add_argument("--labels", type=Path, required=True, help="labelled-text table (LLM/teacher labels)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="format of the tables written")
    add_common_options(parser)
    add_settings_options(parser, TrainV1Settings)
    parser.set_defaults(handler=reported_errors(run))


def table_path(out_dir: Path, name: str, table_format: str) -> Path:
    return out_dir / f"{name}.{table_format}"


def train_v1_files(
    labels: Path,
    out_dir: Path,
    *,
    settings: TrainV1Settings,
    preprocessing: Preprocessing,
    seed: int,
    table_format: str = "jsonl",
    fingerprint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Read ``labels``, write the three tables, train v1 into ``out_dir/model``; return a summary."""
    from training.hashing import training_fingerprint
    from training.stages.sample import HOLDOUT, TEST, V1_TRAIN
    from training.stages.train_v1 import split_for_v1, train_v1
    from training.tables import read_labelled, write_labelled

    # An LLM may leave a comment without labels; normalisation makes it `others`, as the schema says.
    records = read_labelled(labels, default_source="llm", require_labels=False)
    parts = split_for_v1(records, settings=settings, seed=seed)
    for role, name in ((V1_TRAIN, TRAIN_TABLE), (HOLDOUT, HOLDOUT_TABLE), (TEST, TEST_TABLE)):
        write_labelled(table_path(out_dir, name, table_format), parts[role])
    fingerprint = fingerprint or training_fingerprint(settings, preprocessing, seed, {"labels": labels})
    trained = train_v1(
        parts[V1_TRAIN],
        settings=settings,
        preprocessing=preprocessing,
        seed=seed,
        work_dir=out_dir,
        fingerprint=fingerprint,
        progress=progress,
    )
    return {"rows": {role: len(rows) for role, rows in parts.items()}, "model": str(trained.directory)}


def run(args: argparse.Namespace) -> int:
    section, seed, preprocessing = config_section(args, "train_v1")
    settings = settings_from_args(args, TrainV1Settings, base=section, key="train_v1")
    summary = train_v1_files(
        args.labels,
        args.out,
        settings=settings,
        preprocessing=preprocessing,
        seed=seed,
        table_format=args.format,
        progress=not args.no_progress,
    )
    print(f"v1 trained on {summary['rows']['v1_train']} rows; holdout {summary['rows']['holdout']} rows")
    print(f"model: {summary['model']}")
    return 0
