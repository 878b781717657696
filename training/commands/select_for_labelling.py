"""``danmaku-train select-for-labelling``: the comments of a table the served models are least sure of
(or disagree on), as Label Studio tasks with the served prediction pre-filled.

Writes ``tasks.json``, ``label_config.xml`` and ``report.json`` under ``--out``; the annotated
export goes back in as ``manual_labels`` (``training.labelstudio``). See ``training.labelling``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from training.commands.options import add_bundle_options, add_mode_option, bundle_settings, reported_errors
from training.labelling.selection import DEFAULT_POOL_FACTOR, DEFAULT_STRATEGY, STRATEGIES


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "select-for-labelling",
        help="pick the comments the served models are least sure of and write Label Studio tasks",
    )
    parser.add_argument(
        "--table",
        type=Path,
        required=True,
        help="comments: a JSONL/CSV/Parquet file or a directory of them (e.g. a classify-file output)",
    )
    parser.add_argument("--text-column", default="text", help="column (or JSON key) holding the comment (text)")
    parser.add_argument("--id-column", help="column holding the comment's id (default: <file>:<row>)")
    add_bundle_options(parser)
    add_bundle_options(
        parser,
        prefix="compare-",
        required=False,
        models_help="a second model set to disagree with, e.g. the teacher bundles when --models-dir holds "
        "the students (default: none)",
    )
    add_mode_option(parser)
    parser.add_argument("--count", type=int, default=500, help="comments to select (default: 500)")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=DEFAULT_STRATEGY,
        help=f"uncertainty score (default: {DEFAULT_STRATEGY}; disagreement needs --compare-models-dir, "
        "which mixed then averages in); see training/labelling/selection.py",
    )
    parser.add_argument(
        "--pool-factor",
        type=int,
        default=DEFAULT_POOL_FACTOR,
        help=f"diversity is chosen among the pool-factor x count most uncertain (default: {DEFAULT_POOL_FACTOR})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking order (default: 0)")
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for tasks.json, label_config.xml, report.json"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=reported_errors(run))


@contextmanager
def _bars(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    from tqdm import tqdm

    opened: list[Any] = []

    def bar(description: str, total: int) -> Callable[[int], None]:
        progress = tqdm(total=total, desc=description, unit=" comments", disable=not enabled)
        opened.append(progress)

        def advance(comments: int) -> None:
            progress.update(comments)

        return advance

    try:
        yield bar
    finally:
        for progress in opened:
            progress.close()


def run(args: argparse.Namespace) -> int:
    from training.labelling.select import CONFIG_FILE, TASKS_FILE, select_for_labelling_files

    settings = bundle_settings(args)
    assert settings is not None  # --models-dir is required
    with _bars(not args.no_progress) as progress:
        report = select_for_labelling_files(
            args.table,
            args.out,
            settings=settings,
            compare=bundle_settings(args, prefix="compare-"),
            text_column=args.text_column,
            id_column=args.id_column,
            count=args.count,
            strategy=args.strategy,
            pool_factor=args.pool_factor,
            seed=args.seed,
            mode=args.mode,
            progress=progress,
        )
    labels = ", ".join(f"{name} {figures['count']}" for name, figures in report["per_served_label"].items())
    print(
        f"{report['selected']} of {report['distinct_texts']} distinct texts ({report['comments']} comments) "
        f"selected by {report['strategy']}: {labels}"
    )
    print(f"tasks: {args.out / TASKS_FILE} (import into Label Studio with {args.out / CONFIG_FILE})")
    return 0
