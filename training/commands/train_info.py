"""``danmaku-train train-info``: the information model (information vs others) on manual labels.

Writes ``train.<format>``/``validation.<format>`` (the rows used, split 80/20 by class) and
``model/`` under ``--out`` (resumable).
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
from training.stages.train_info import TrainInfoSettings

TRAIN_TABLE = "train"
VALIDATION_TABLE = "validation"


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
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="format of the tables written")
    add_common_options(parser)
    add_settings_options(parser, TrainInfoSettings)
    parser.set_defaults(handler=reported_errors(run))


def train_info_files(
    labels: Path,
    out_dir: Path,
    *,
    settings: TrainInfoSettings,
    preprocessing: Preprocessing,
    seed: int,
    table_format: str = "jsonl",
    fingerprint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    from training.hashing import training_fingerprint
    from training.stages.train_info import split_information, train_info
    from training.tables import read_labelled, write_labelled

    records = read_labelled(labels, default_source="manual")
    train, validation = split_information(
        records, negatives=settings.negatives, validation_fraction=settings.validation_fraction, seed=seed
    )
    write_labelled(out_dir / f"{TRAIN_TABLE}.{table_format}", train)
    write_labelled(out_dir / f"{VALIDATION_TABLE}.{table_format}", validation)
    fingerprint = fingerprint or training_fingerprint(settings, preprocessing, seed, {"labels": labels})
    trained = train_info(
        train,
        validation,
        settings=settings,
        preprocessing=preprocessing,
        seed=seed,
        work_dir=out_dir,
        fingerprint=fingerprint,
        progress=progress,
    )
    return trained.summary(train=len(train), validation=len(validation))


def run(args: argparse.Namespace) -> int:
    section, seed, preprocessing = config_section(args, "train_info")
    settings = settings_from_args(args, TrainInfoSettings, base=section, key="train_info")
    summary = train_info_files(
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
