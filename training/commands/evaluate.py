"""``danmaku-train evaluate``: score a bundle (through ONNX Runtime, as serving does) or a trained
model directory on a labelled-text table; JSON + Markdown report and PNG plots under ``--out``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.commands.options import reported_errors


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate", help="stage 9: per-class P/R/F1, threshold tuning and sweep, PR curves, confusion"
    )
    parser.add_argument("--model", type=Path, required=True, help="bundle directory or trained model directory")
    parser.add_argument("--table", type=Path, required=True, help="labelled-text table to score")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument("--split", help="score only rows whose 'split' column has this value (e.g. validation)")
    parser.add_argument("--validation", type=Path, help="table to tune per-class thresholds on (reported as 'tuned')")
    parser.add_argument("--validation-split", help="rows of --validation with this 'split' value (e.g. validation)")
    parser.add_argument(
        "--negatives", choices=("routed", "all"), default="routed", help="information task: which rows are negatives"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=reported_errors(run))


def _rows(path: Path, split: str | None) -> list[Any]:
    from training.tables import TableError, iter_labelled

    records = list(iter_labelled(path, default_source="evaluation"))
    if split is not None:
        records = [record for record in records if record.extra.get("split") == split]
        if not records:
            raise TableError(path, f"no rows with split == {split!r}")
    return records


def evaluate_files(
    model: Path,
    table: Path,
    out_dir: Path,
    *,
    split: str | None = None,
    validation: Path | None = None,
    validation_split: str | None = None,
    negatives: str = "routed",
    batch_size: int = 64,
    plots: bool = True,
    progress: bool = True,
    predictor: Any = None,
) -> dict[str, Any]:
    """Score ``model`` on ``table``; write report.json, report.md and plots; return the report."""
    from training.evaluation.markdown import evaluation_markdown
    from training.evaluation.metrics import precision_recall_curves
    from training.evaluation.plots import plot_precision_recall, plot_threshold_sweep
    from training.evaluation.predictors import open_predictor
    from training.provenance import data_file
    from training.stages.evaluate import evaluate as evaluate_stage
    from training.stages.evaluate import head_targets, tune_head_thresholds
    from training.tables import write_json, write_text

    predictor = predictor or open_predictor(model, batch_size=batch_size)
    records = _rows(table, split)
    tuned = None
    if validation is not None:
        held = _rows(validation, validation_split)
        held_probabilities = predictor.probabilities([r.text for r in held], progress=progress)
        tuned = tune_head_thresholds(predictor.task, predictor.heads, held, held_probabilities, negatives=negatives)
    probabilities = predictor.probabilities([record.text for record in records], progress=progress)
    report = evaluate_stage(
        predictor.task, predictor.heads, records, probabilities, tuned_thresholds=tuned, negatives=negatives
    )
    report["model"] = predictor.description
    report["table"] = str(table) + (f" (split {split})" if split else "")
    report["data"] = [data_file(table, rows=len(records), role="evaluated")]
    if plots:
        keep, targets = head_targets(predictor.task, predictor.heads, records, negatives=negatives)
        for head in predictor.heads:
            entry = report["heads"][head.name]
            curves = precision_recall_curves(targets[head.name], probabilities[head.name][keep], head.labels)
            title = f"{predictor.description.get('name', model.name)} – {head.name} – {table.name}"
            pr = plot_precision_recall(curves, entry["average_precision"], out_dir / f"pr_{head.name}.png", title=title)
            sweep = plot_threshold_sweep(entry["sweep"], out_dir / f"sweep_{head.name}.png", title=title)
            entry["plots"] = {"precision-recall": pr.name, "threshold sweep": sweep.name}
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", evaluation_markdown(report, title=f"Evaluation of {model.name} on {table.name}"))
    return report


def run(args: argparse.Namespace) -> int:
    from training.stages.evaluate import headline

    report = evaluate_files(
        args.model,
        args.table,
        args.out,
        split=args.split,
        validation=args.validation,
        validation_split=args.validation_split,
        negatives=args.negatives,
        batch_size=args.batch_size,
        plots=not args.no_plots,
        progress=not args.no_progress,
    )
    figures = headline(report)
    print(
        f"{figures['head']} head on {figures['rows']} rows ({figures['thresholds']} thresholds): "
        f"macro-F1 {figures['macro_f1']:.3f}, micro-F1 {figures['micro_f1']:.3f}"
    )
    print(f"report: {args.out / 'report.md'}")
    return 0
