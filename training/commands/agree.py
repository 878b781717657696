"""``danmaku-train agree``: v1 predicts the holdout; agreement with the LLM labels, as a report.

Writes ``holdout.<format>`` (the holdout with ``v1_labels``, ``agreed``...: the input of curate),
``report.json`` and ``report.md`` (agreement before/after normalisation, per category, and v1's
per-class figures against the normalised LLM labels) under ``--out``.
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
from training.stages.agree import AgreeSettings

ANNOTATED_TABLE = "holdout"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "agree", help="stage 4: v1 predicts the holdout; agreement with the LLM labels before/after normalisation"
    )
    parser.add_argument("--model", type=Path, required=True, help="v1 model directory (train-v1 OUT/model)")
    parser.add_argument("--holdout", type=Path, required=True, help="holdout table (train-v1 OUT/holdout.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="format of the table written")
    add_common_options(parser)
    add_settings_options(parser, AgreeSettings)
    parser.set_defaults(handler=reported_errors(run))


def agree_files(
    model_dir: Path,
    holdout: Path,
    out_dir: Path,
    *,
    settings: AgreeSettings,
    table_format: str = "jsonl",
    progress: bool = True,
) -> dict[str, Any]:
    """Predict, compare, write the annotated holdout and the reports; return the report."""
    from training.evaluation.markdown import agreement_markdown
    from training.evaluation.predictors import CheckpointPredictor
    from training.provenance import data_file
    from training.stages.agree import agreement, annotate, decide_labels
    from training.stages.evaluate import evaluate
    from training.tables import read_labelled, write_json, write_labelled, write_text

    records = read_labelled(holdout, default_source="llm", require_labels=False)
    predictor = CheckpointPredictor(model_dir, batch_size=settings.batch_size)
    probabilities = predictor.probabilities([record.text for record in records], progress=progress)
    predicted = decide_labels(probabilities["main"], probabilities["sub"], threshold=settings.threshold)
    result = agreement(records, predicted)
    write_labelled(out_dir / f"{ANNOTATED_TABLE}.{table_format}", annotate(records, predicted, result))
    report = dict(result.report)
    v1 = evaluate(predictor.task, predictor.heads, records, probabilities)
    for entry in v1["heads"].values():
        entry.pop("sweep", None)  # the agreement report keeps per-class figures only
    report["v1_evaluation"] = v1
    report["settings"] = settings.model_dump(mode="json")
    report["data"] = [data_file(holdout, rows=len(records), role="holdout"), {"path": str(model_dir), "role": "v1"}]
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", agreement_markdown(report))
    return report


def run(args: argparse.Namespace) -> int:
    section, _seed, _preprocessing = config_section(args, "agree")
    settings = settings_from_args(args, AgreeSettings, base=section, key="agree")
    report = agree_files(
        args.model, args.holdout, args.out, settings=settings, table_format=args.format, progress=not args.no_progress
    )
    before, after = report["before_normalisation"], report["after_normalisation"]
    print(
        f"agreement on {report['rows']} rows: {100 * before['agreement']:.2f}% before normalisation, "
        f"{100 * after['agreement']:.2f}% after ({after['agreed']} agreed)"
    )
    print(f"report: {args.out / 'report.md'}")
    return 0
