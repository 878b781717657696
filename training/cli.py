"""``danmaku-train``: thin command line over the pipeline stages.

Each sub-command lives in its own module under ``training/commands/`` and exposes
``register(subparsers)``; a pipeline stage's command is found by its config section
(``training/commands/<section>.py``). Heavy imports (torch, transformers) happen inside the
handlers so ``danmaku-train --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

# Order is the order shown in --help: the pipeline read top to bottom. A stage's command, if it has
# one, is ``training/commands/<section>.py``.
TOOL_COMMANDS: tuple[str, ...] = ("training.commands.import_encoder", "training.commands.tiny_encoder")
AFTER_STAGES: tuple[str, ...] = (
    "training.commands.score_served",
    "training.commands.select_for_labelling",
    "training.commands.run",
)


def command_modules() -> list[str]:
    from training.pipeline import STAGES

    stage_commands = [f"training.commands.{stage.SECTION}" for stage in STAGES]
    return [*TOOL_COMMANDS, *(name for name in stage_commands if importlib.util.find_spec(name)), *AFTER_STAGES]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="danmaku-train",
        description="Train the danmaku classifiers and export them as ONNX model bundles.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in command_modules():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
