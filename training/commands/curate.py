"""``danmaku-train curate``: the curated training set of BERT v2 (reference sampling, provenance, split).

Writes ``curated.<format>`` (every row with ``provenance`` and ``split``), ``report.json`` and
``report.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import (
    add_common_options,
    add_settings_options,
    config_section,
    reported_errors,
    settings_from_args,
)
from training.stages.curate import CurationSettings

CURATED_TABLE = "curated"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "curate", help="stage 5: sample agreed/disagreed holdout rows + manual labels into v2's training set"
    )
    parser.add_argument("--holdout", type=Path, help="annotated holdout (agree OUT/holdout.jsonl); absent: manual only")
    parser.add_argument("--manual", type=Path, help="manual labels (JSONL/CSV/Parquet/Label Studio JSON)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="format of the table written")
    add_common_options(parser)
    add_settings_options(parser, CurationSettings)
    parser.set_defaults(handler=reported_errors(run))


def curate_files(
    holdout: Path | None,
    manual: Path | None,
    out_dir: Path,
    *,
    settings: CurationSettings,
    seed: int,
    table_format: str = "jsonl",
) -> dict[str, Any]:
    """Read the annotated holdout and manual labels, curate, write the table and reports."""
    from training.evaluation.markdown import curation_markdown
    from training.provenance import data_file
    from training.stages.curate import curate
    from training.tables import TableError, read_labelled, write_json, write_labelled, write_text

    if holdout is None and manual is None:
        raise ValueError("curate needs an annotated holdout, manual labels, or both")
    records = read_labelled(holdout, default_source="llm", require_labels=False) if holdout else []
    missing = [record.id for record in records if "agreed" not in record.extra]
    if holdout and missing:
        raise TableError(
            holdout, f"{len(missing)} rows lack the 'agreed' column (first: {missing[0]!r}); run agree first"
        )
    agreed = [bool(record.extra["agreed"]) for record in records]
    manual_records = read_labelled(manual, default_source="manual") if manual else []
    curated = curate(records, agreed, manual_records, settings=settings, seed=seed)
    write_labelled(out_dir / f"{CURATED_TABLE}.{table_format}", curated.records)
    counts = dict(curated.counts)
    counts["settings"] = settings.model_dump(mode="json")
    counts["seed"] = seed
    counts["data"] = [data_file(holdout, rows=len(records), role="holdout")] if holdout else []
    if manual:
        counts["data"].append(data_file(manual, rows=len(manual_records), role="manual"))
    write_json(out_dir / "report.json", counts)
    write_text(out_dir / "report.md", curation_markdown(counts))
    return counts


def run(args: argparse.Namespace) -> int:
    section, seed, _preprocessing = config_section(args, "curate")
    settings = settings_from_args(args, CurationSettings, base=section, key="curate")
    counts = curate_files(args.holdout, args.manual, args.out, settings=settings, seed=seed, table_format=args.format)
    print(
        f"curated {counts['rows']} rows (train {counts['train']}, validation {counts['validation']}): {counts['kept']}"
    )
    print(f"table: {args.out / f'{CURATED_TABLE}.{args.format}'}")
    return 0
