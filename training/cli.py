"""``danmaku-train``: thin command line over the pipeline stages.

Each sub-command lives in its own module under ``training/commands/`` and exposes
``register(subparsers)``; heavy imports (torch, transformers) happen inside the handlers so
``danmaku-train --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Order is the order shown in --help: the pipeline read top to bottom.
COMMAND_MODULES: tuple[str, ...] = (
    "training.commands.import_encoder",
    "training.commands.tiny_encoder",
    "training.commands.ingest",
    "training.commands.llm_label",
    "training.commands.train_v1",
    "training.commands.agree",
    "training.commands.curate",
    "training.commands.train_v2",
    "training.commands.train_info",
    "training.commands.export",
    "training.commands.evaluate",
    "training.commands.score_served",
    "training.commands.run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="danmaku-train",
        description="Train the danmaku classifiers and export them as ONNX model bundles.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
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
