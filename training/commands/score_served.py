"""``danmaku-train score-served``: score the label the service returns (both bundles, or one joint emotion
bundle, routing rule, thresholds) on a gold table; writes ``served.json`` and ``served.md`` under ``--out``.

The comments go through the service's own ``Runtime`` (bundles, micro-batchers, router), exactly as
``POST /classify`` and ``danmaku-serve classify-file`` answer them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import add_bundle_options, add_mode_option, reported_errors
from training.evaluation.served import GOLD_FORMATS


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "score-served", help="score the served label (both bundles + routing) against a gold table"
    )
    add_bundle_options(parser)
    parser.add_argument("--table", type=Path, required=True, help="gold table (labelled-text table, or see --gold)")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument(
        "--gold",
        choices=GOLD_FORMATS,
        default="labels",
        help="labels: a labelled-text table of main labels; smp2020: an SMP2020-EWECT JSON array "
        "(happy -> emotions_positive; angry, sad, fear -> emotions_negative; others left out)",
    )
    add_mode_option(parser)
    parser.add_argument("--worst", type=int, default=30, help="most confident errors listed")
    parser.add_argument("--title", help="report title (default: the table's name)")
    parser.set_defaults(handler=reported_errors(run))


def run(args: argparse.Namespace) -> int:
    from training.evaluation.served import score_served_files

    report = score_served_files(
        args.models_dir,
        args.table,
        args.out,
        emotion_bundle=args.emotion_bundle,
        information_bundle=args.information_bundle,
        gold=args.gold,
        mode=args.mode,
        worst=args.worst,
        title=args.title,
    )
    overall = report["overall"]
    print(
        f"{overall['rows']} rows: accuracy {overall['accuracy']:.3f}, macro-F1 {overall['macro_f1']:.3f} "
        f"(without others {overall['macro_f1_without_others']:.3f}); "
        + ", ".join(f"{name} {figures['f1']:.3f}" for name, figures in overall["per_class"].items())
    )
    print(f"report: {args.out / 'served.md'}")
    return 0
