"""``danmaku-train train-v2``: the emotion model on the curated set (class-weighted, early stopping).

Reads the ``split`` column written by curate; writes ``model/`` under ``--out`` (resumable).
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
from training.stages.train_v2 import TrainV2Settings


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train-v2", help="stage 6: train BERT v2 (the emotion model) on the curated set"
    )
    parser.add_argument("--curated", type=Path, required=True, help="curated table (curate OUT/curated.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_common_options(parser)
    add_settings_options(parser, TrainV2Settings)
    parser.set_defaults(handler=reported_errors(run))


def curated_splits(curated: Path) -> tuple[list[Any], list[Any]]:
    """``(train, validation)`` rows of a curated table, by its ``split`` column."""
    from training.stages.curate import TRAIN, VALIDATION
    from training.tables import TableError, read_labelled

    records = read_labelled(curated, default_source="curated")
    splits = {str(record.extra.get("split")) for record in records}
    if not splits <= {TRAIN, VALIDATION}:
        raise TableError(curated, f"the 'split' column must hold train/validation, found {sorted(splits)}")
    return (
        [record for record in records if record.extra.get("split") == TRAIN],
        [record for record in records if record.extra.get("split") == VALIDATION],
    )


def train_v2_files(
    curated: Path,
    out_dir: Path,
    *,
    settings: TrainV2Settings,
    preprocessing: Preprocessing,
    seed: int,
    fingerprint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    from training.hashing import training_fingerprint
    from training.stages.train_v2 import train_v2

    train, validation = curated_splits(curated)
    fingerprint = fingerprint or training_fingerprint(settings, preprocessing, seed, {"curated": curated})
    trained = train_v2(
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
    section, seed, preprocessing = config_section(args, "train_v2")
    settings = settings_from_args(args, TrainV2Settings, base=section, key="train_v2")
    summary = train_v2_files(
        args.curated, args.out, settings=settings, preprocessing=preprocessing, seed=seed, progress=not args.no_progress
    )
    print(
        f"v2 trained on {summary['rows']['train']} rows; best epoch {summary['best_epoch']} "
        f"(validation macro-F1 {summary['best_validation_score']})"
    )
    print(f"model: {summary['model']}")
    return 0
