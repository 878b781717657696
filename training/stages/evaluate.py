"""Stage 9, evaluate: score every bundle (through ONNX Runtime, as serving does) on its tables.

Per bundle: the emotion model on the curated set's validation rows, the information model on
train-info's validation table; both on train-v1's test table when it has rows, and on every
``evaluate.tables`` entry. Per table: ``report.json``, ``report.md`` and PNG plots; a summary of
all of them in ``summary.{json,md}``. The figures are ``training.evaluation.scoring``'s.

When both models are exported (or one joint emotion bundle carrying the information head,
``train_v2.information_head``), the label the service returns (the bundles, the routing rule,
the thresholds of ``evaluate.served_mode``) is scored on the test table and the extra tables too
(``training.evaluation.served``): ``served/<table>/served.{json,md}`` and ``served`` in the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from service.settings import Mode
from training.records import LabelledText
from training.splits import SPLIT_COLUMN, VALIDATION
from training.stages import curate, export, train_info, train_v1

if TYPE_CHECKING:
    from training.layout import RunLayout

NAME = "evaluate"
SECTION = "evaluate"
DESCRIPTION = "per-class figures, threshold sweeps, PR curves, confusion"
ALSO_READS: tuple[str, ...] = ("train_info",)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: list[Path] = Field(
        default_factory=list, description="Extra labelled-text tables to score every bundle on (e.g. a gold set)."
    )
    variants: bool = Field(True, description="Score the int8/fp16 variants as well.")
    plots: bool = Field(True, description="Write precision-recall and threshold-sweep PNGs.")
    batch_size: int = Field(64, ge=1, description="Comments per ONNX Runtime call.")
    served_mode: Mode = Field(
        "precision", description="The service mode whose information threshold the served labels are scored at."
    )


def _rows(path: Path, split: str | None) -> list[LabelledText]:
    from training.tables import TableError, iter_labelled

    records = list(iter_labelled(path, default_source="evaluation"))
    if split is not None:
        records = [record for record in records if record.extra.get(SPLIT_COLUMN) == split]
        if not records:
            raise TableError(path, f"no rows with split == {split!r}")
    return records


def evaluate_files(
    model: Path,
    table: Path,
    out_dir: Path,
    *,
    settings: Settings,
    negatives: str,
    split: str | None = None,
    validation: Path | None = None,
    validation_split: str | None = None,
    progress: bool = True,
    predictor: Any = None,
) -> dict[str, Any]:
    """Score ``model`` on ``table``; write report.json, report.md and plots; return the report."""
    from training.evaluation.markdown import evaluation_markdown
    from training.evaluation.metrics import precision_recall_curves
    from training.evaluation.plots import plot_precision_recall, plot_threshold_sweep
    from training.evaluation.predictors import open_predictor
    from training.evaluation.scoring import evaluate, head_targets, tune_head_thresholds
    from training.provenance import data_file
    from training.tables import write_json, write_text

    predictor = predictor or open_predictor(model, batch_size=settings.batch_size)
    records = _rows(table, split)
    tuned = None
    if validation is not None:
        held = _rows(validation, validation_split)
        held_probabilities = predictor.probabilities([r.text for r in held], progress=progress)
        tuned = tune_head_thresholds(predictor.task, predictor.heads, held, held_probabilities, negatives=negatives)
    probabilities = predictor.probabilities([record.text for record in records], progress=progress)
    report = evaluate(
        predictor.task, predictor.heads, records, probabilities, tuned_thresholds=tuned, negatives=negatives
    )
    report["model"] = predictor.description
    report["table"] = str(table) + (f" (split {split})" if split else "")
    report["data"] = [data_file(table, rows=len(records), role="evaluated")]
    if settings.plots:
        targets = head_targets(predictor.task, predictor.heads, records, negatives=negatives)
        for head in predictor.heads:
            entry = report["heads"][head.name]
            keep, truth = targets[head.name]
            curves = precision_recall_curves(truth, probabilities[head.name][keep], head.labels)
            title = f"{predictor.description.get('name', model.name)} – {head.name} – {table.name}"
            pr = plot_precision_recall(curves, entry["average_precision"], out_dir / f"pr_{head.name}.png", title=title)
            sweep = plot_threshold_sweep(entry["sweep"], out_dir / f"sweep_{head.name}.png", title=title)
            entry["plots"] = {"precision-recall": pr.name, "threshold sweep": sweep.name}
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", evaluation_markdown(report, title=f"Evaluation of {model.name} on {table.name}"))
    return report


def _test_table(layout: RunLayout) -> Path:
    return layout.table(train_v1.SECTION, train_v1.TEST)


def tables(layout: RunLayout, task: str) -> list[tuple[str, Path, str | None]]:
    """``(name, table, split)`` a bundle of ``task`` is scored on (see the module docstring)."""
    from training.tables import iter_labelled

    if task == "emotion":
        scored: list[tuple[str, Path, str | None]] = [("validation", curate.curated_table(layout), VALIDATION)]
    else:
        scored = [("validation", train_info.validation_table(layout), None)]
    test = _test_table(layout)
    if layout.config.train_v1.enabled and test.is_file() and any(True for _ in iter_labelled(test)):
        scored.append(("test", test, None))
    return scored + [(path.stem, path, None) for path in layout.config.evaluate.tables]


def inputs(layout: RunLayout) -> list[Path]:
    config = layout.config
    return [
        *export.bundles(layout),
        curate.curated_table(layout),
        *([_test_table(layout)] if config.train_v1.enabled else []),
        *([train_info.validation_table(layout)] if config.train_info.enabled else []),
        *config.evaluate.tables,
    ]


def outputs(layout: RunLayout) -> list[Path]:
    return [layout.dir(SECTION) / "summary.json"]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    from training.evaluation.markdown import summary_markdown
    from training.evaluation.predictors import BundlePredictor
    from training.evaluation.scoring import headline
    from training.tables import write_json, write_text

    out = layout.dir(SECTION)
    fp32 = export.bundle_names(layout.config)
    rows: list[dict[str, Any]] = []
    for bundle_dir in export.bundles(layout):
        if not settings.variants and bundle_dir.name not in fp32:
            continue
        predictor = BundlePredictor(bundle_dir, batch_size=settings.batch_size)
        for table_name, path, split in tables(layout, predictor.task):
            report = evaluate_files(
                bundle_dir,
                path,
                out / bundle_dir.name / table_name,
                settings=settings,
                negatives=layout.config.information_negatives,
                split=split,
                progress=progress,
                predictor=predictor,
            )
            rows.append(
                {
                    "bundle": bundle_dir.name,
                    "table": table_name,
                    "default": headline(report, at="default"),
                    "model": headline(report, at="model"),
                    "report": str(Path(bundle_dir.name) / table_name / "report.md"),
                }
            )
    served = _score_served(layout, settings, out / "served")
    write_json(out / "summary.json", {"evaluations": rows, "served": served})
    write_text(out / "summary.md", summary_markdown(rows, served))


def _score_served(layout: RunLayout, settings: Settings, out: Path) -> dict[str, Any]:
    """The served label's figures on the test table and the extra tables (both models, or a joint one, needed)."""
    from training.evaluation.served import score_served_files

    config = layout.config
    if not config.serves_information:
        return {}
    scored = [(name, path) for name, path, _split in tables_of_both(layout)]
    figures: dict[str, Any] = {}
    for name, path in scored:
        report = score_served_files(
            config.models_dir,
            path,
            out / name,
            emotion_bundle=config.export.emotion_name,
            information_bundle=config.export.information_name,
            mode=settings.served_mode,
            title=f"Served labels on {path.name} ({settings.served_mode} mode)",
        )
        figures[name] = {**report["overall"], "report": str(Path("served") / name / "served.md")}
    return figures


def tables_of_both(layout: RunLayout) -> list[tuple[str, Path, str | None]]:
    """The tables both models are scored on: the test table and the extra tables (not the validation splits)."""
    return [entry for entry in tables(layout, "emotion") if entry[0] != "validation"]
