"""``danmaku-train run --config pipeline.yaml``: every configured stage in order, skipping the ones
whose inputs and config are unchanged (content hashes + stamp files), resuming where a killed run
stopped (see ``training/runner.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import reported_errors
from training.pipeline import STAGE_NAMES


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the pipeline of a config, skipping stages whose inputs and config are unchanged"
    )
    parser.add_argument("--config", type=Path, required=True, help="pipeline YAML (see configs/pipeline.example.yaml)")
    parser.add_argument("--from", dest="start", choices=STAGE_NAMES, help="first stage to consider")
    parser.add_argument("--to", dest="stop", choices=STAGE_NAMES, help="last stage to consider")
    parser.add_argument("--force", nargs="*", default=[], choices=STAGE_NAMES, help="run these stages even if fresh")
    parser.add_argument("--dry-run", action="store_true", help="only say which stages would run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.pipeline import build_stages
    from training.runner import StageRunner

    config = load_config(args.config)
    stages = build_stages(config, progress=not args.no_progress)
    outcomes = StageRunner(config.run_dir).run(
        stages, start=args.start, stop=args.stop, force=args.force, dry_run=args.dry_run
    )
    for outcome in outcomes:
        timing = f" in {outcome.seconds:.1f} s" if outcome.status == "ran" else ""
        print(f"{outcome.name:<11} {outcome.status}{timing}  ({outcome.reason})")
    return 0
