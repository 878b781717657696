"""``danmaku-train export``: a trained model directory -> a model bundle (+ int8 / fp16 variants)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_stage_options, reported_errors, stage_settings
from training.stages import export


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export", help="stage 8: export a trained model as an ONNX bundle (thresholds tuned on validation)"
    )
    parser.add_argument("--model", type=Path, required=True, help="trained model directory (train-* OUT/model)")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write, e.g. models/emotion")
    parser.add_argument("--validation", type=Path, help="table whose validation rows tune the thresholds")
    parser.add_argument("--data", type=Path, nargs="*", default=[], help="data files recorded in the provenance")
    add_stage_options(parser, export)
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    settings, _seed, _preprocessing = stage_settings(args, export)
    written = export.export_files(
        args.model, args.out, validation=args.validation, settings=settings, data=[(path, "data") for path in args.data]
    )
    for directory in written:
        print(f"bundle: {directory}")
    return 0
