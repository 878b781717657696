"""``danmaku-serve``: thin command line over the service.

Each sub-command lives in its own module under ``service/commands/`` and exposes
``register(subparsers)``; without a sub-command, ``serve`` runs (``danmaku-serve --port 9000``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = ("service.commands.serve", "service.commands.classify_file")
DEFAULT_COMMAND = "serve"


def build_parser() -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser and the names of its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="danmaku-serve",
        description="Serve the danmaku classifiers over HTTP (default command: serve). "
        "Every serve option is also a DANMAKU_* environment variable; see docs/serving.md.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser, list(subparsers.choices)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser()
    if not arguments or (arguments[0] not in commands and arguments[0] not in ("-h", "--help")):
        arguments.insert(0, DEFAULT_COMMAND)
    args = parser.parse_args(arguments)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
