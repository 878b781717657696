"""Markdown renderings of the JSON reports (evaluation, agreement, curation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def per_class_table(figures: Mapping[str, Any], average_precision: Mapping[str, float | None] | None = None) -> str:
    """Per-class P/R/F1/support (+ AP) and the three averages of one ``classification_report``."""
    with_ap = average_precision is not None
    header = "| label | threshold | precision | recall | F1 | support | predicted |" + (" AP |" if with_ap else "")
    lines = [header, "|" + "---|" * (8 if with_ap else 7)]
    for label, row in figures["per_class"].items():
        ap = f" {_f(average_precision.get(label))} |" if average_precision is not None else ""
        lines.append(
            f"| {label} | {row['threshold']:.2f} | {_f(row['precision'])} | {_f(row['recall'])} | "
            f"{_f(row['f1'])} | {row['support']} | {row['predicted']} |{ap}"
        )
    for name in ("micro", "macro", "weighted"):
        avg = figures[name]
        support = avg.get("support", "")
        lines.append(
            f"| **{name} avg** | | {_f(avg['precision'])} | {_f(avg['recall'])} | {_f(avg['f1'])} | {support} | |"
            + (" |" if with_ap else "")
        )
    if figures.get("absent_labels"):
        lines.append("")
        lines.append(f"Absent from this table (left out of macro): {', '.join(figures['absent_labels'])}.")
    return "\n".join(lines)


def confusion_table(confusion: Mapping[str, Any]) -> str:
    labels = confusion["labels"]
    lines = [
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "|" + "---|" * (len(labels) + 1),
    ]
    for label, row in zip(labels, confusion["matrix"], strict=True):
        lines.append(f"| **{label}** | " + " | ".join(str(value) for value in row) + " |")
    lines.append("")
    lines.append(
        f"Top-1 over {confusion['rows']} rows with exactly one true category "
        f"({confusion['rows_left_out']} left out); accuracy {_pct(confusion['accuracy'])}."
    )
    return "\n".join(lines)


_THRESHOLD_TITLES = {
    "default": "at the default threshold",
    "model": "at the model's per-class thresholds (tuned on validation at export)",
    "tuned": "at thresholds tuned on the validation table given to evaluate",
}


def evaluation_markdown(report: Mapping[str, Any], *, title: str) -> str:
    parts = [f"# {title}", ""]
    model = report.get("model", {})
    if model:
        parts.append("Model: " + ", ".join(f"{key} `{value}`" for key, value in model.items()))
    if report.get("table"):
        parts.append(f"Table: `{report['table']}`")
    parts.append(f"Rows: {report['rows']} ({report['rows_scored']} scored for the {report['task']} task).")
    for head, entry in report["heads"].items():
        parts += ["", f"## Head `{head}`"]
        for name, figures in entry["at"].items():
            parts += ["", f"### {_THRESHOLD_TITLES.get(name, name)}", ""]
            parts.append(per_class_table(figures, entry["average_precision"] if name == "default" else None))
        if "confusion" in entry:
            parts += ["", "### Confusion between main categories", "", confusion_table(entry["confusion"])]
        for kind, path in entry.get("plots", {}).items():
            parts += ["", f"![{kind} {head}]({path})"]
    return "\n".join(parts) + "\n"


def agreement_markdown(report: Mapping[str, Any]) -> str:
    before, after = report["before_normalisation"], report["after_normalisation"]
    parts = [
        "# Agreement of BERT v1 with the LLM labels (holdout)",
        "",
        f"Rows: {report['rows']}. A row agrees when v1's set of main categories equals the LLM's exactly.",
        "",
        "| | agreed | agreement |",
        "|---|---|---|",
        f"| before normalisation | {before['agreed']} | {_pct(before['agreement'])} |",
        f"| after normalisation | {after['agreed']} | {_pct(after['agreement'])} |",
        f"| after, sub-categories too | {after['agreed_with_subcategories']} | "
        f"{_pct(after['subcategory_agreement'])} |",
        "",
        f"Normalisation changed the label set of {report['normalisation']['rows_changed']} rows.",
    ]
    dropped = report["normalisation"]["unknown_labels_dropped"]
    if dropped:
        parts.append("Unknown labels dropped: " + ", ".join(f"`{k}` ×{v}" for k, v in list(dropped.items())[:20]))
    for stage, data in (("before", before), ("after", after)):
        parts += [
            "",
            f"## Per category, {stage} normalisation",
            "",
            "| category | LLM rows | v1 rows | both | agreed | agreement |",
            "|---|---|---|---|---|---|",
        ]
        for label, row in data["per_category"].items():
            parts.append(
                f"| {label} | {row['llm']} | {row['v1']} | {row['both']} | {row['agreed']} | {_pct(row['agreement'])} |"
            )
    if "v1_evaluation" in report:
        main = report["v1_evaluation"]["heads"]["main"]
        parts += ["", "## v1 against the normalised LLM labels (main categories)", ""]
        parts.append(per_class_table(main["at"]["default"], main["average_precision"]))
        sub = report["v1_evaluation"]["heads"].get("sub")
        if sub:
            parts += ["", "## v1 against the normalised LLM labels (sub-categories)", ""]
            parts.append(per_class_table(sub["at"]["default"], sub["average_precision"]))
    return "\n".join(parts) + "\n"


def curation_markdown(counts: Mapping[str, Any]) -> str:
    parts = [
        "# Curated training set of BERT v2",
        "",
        f"Rows: {counts['rows']} (train {counts['train']}, validation {counts['validation']}).",
        "",
        "| provenance | pool | rate | kept |",
        "|---|---|---|---|",
    ]
    for name, kept in counts["kept"].items():
        parts.append(f"| {name} | {counts['pools'][name]} | {counts['rates'][name]:.2f} | {kept} |")
    parts += [
        "",
        f"Holdout rows dropped because a manual label has the same text: "
        f"{counts['holdout_rows_dropped_as_manual_duplicates']}.",
        "",
        "| main category | rows |",
        "|---|---|",
    ]
    parts += [f"| {label} | {rows} |" for label, rows in counts["labels"].items()]
    return "\n".join(parts) + "\n"


def summary_markdown(rows: Sequence[Mapping[str, Any]], served: Mapping[str, Any] | None = None) -> str:
    """One line per (bundle, table): macro/micro F1 at the default and at the model's thresholds;
    then the served label's figures per table when both models were scored together."""
    parts = [
        "# Evaluation summary",
        "",
        "Macro-F1 is over the classes present in the table; 'model' thresholds were tuned on the validation "
        "split at export, so validation figures at them are optimistic — the test table (never seen by any "
        "stage) is the fair one.",
        "",
        "| bundle | table | rows | macro-F1 @0.5 | macro-F1 @model | micro-F1 @model | per-class F1 @model | report |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        model = row["model"]
        per_class = ", ".join(
            f"{key[3:]} {value:.2f}" for key, value in model.items() if key.startswith("f1_") and value is not None
        )
        parts.append(
            f"| {row['bundle']} | {row['table']} | {model['rows']} | {row['default']['macro_f1']:.3f} | "
            f"{model['macro_f1']:.3f} | {model['micro_f1']:.3f} | {per_class} | [report]({row['report']}) |"
        )
    if served:
        parts += [
            "",
            "The label the service returns (both bundles, routing, thresholds):",
            "",
            "| table | rows | accuracy | macro-F1 | macro-F1 w/o others | per-class F1 | report |",
            "|---|---|---|---|---|---|---|",
        ]
        for table, figures in served.items():
            per_class = ", ".join(f"{name} {values['f1']:.2f}" for name, values in figures["per_class"].items())
            parts.append(
                f"| {table} | {figures['rows']} | {figures['accuracy']:.3f} | {figures['macro_f1']:.3f} | "
                f"{figures['macro_f1_without_others']:.3f} | {per_class} | [report]({figures['report']}) |"
            )
    return "\n".join(parts) + "\n"
