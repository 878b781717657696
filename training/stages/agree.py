"""Stage 4, agree: how often BERT v1 agrees with the LLM on the holdout, before and after normalisation.

v1's probabilities become label sets (``decide_labels``); a row *agrees* when v1's set of main
categories equals the LLM's set exactly. Two comparisons:

- **before** normalisation: the LLM's main labels as written (``raw_labels`` when the table has
  that column, else ``labels``), compared as strings: ``other`` vs ``others`` is a disagreement;
- **after**: the LLM labels through ``training.taxonomy.normalise_labels`` (aliases folded,
  sub-categories lifted to their parent, unknown names dropped, ``others`` only when alone).

Per main category: the LLM's and v1's counts, both, and the share of the LLM's rows of that
category that agree. The *after* mask is what curation uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.records import LabelledText
from training.stages import train_v1
from training.tables import table_path
from training.taxonomy import MAIN_LABELS, SCHEMA, SUB_LABELS, normalise_labels

if TYPE_CHECKING:
    from training.layout import RunLayout

NAME = "agree"
SECTION = "agree"
DESCRIPTION = "v1 vs LLM labels on the holdout"
ANNOTATED_TABLE = "holdout"  # the holdout with v1's labels and the agreement flags: curate's input

RAW_LABELS_COLUMN = "raw_labels"
RAW_SUBCATEGORIES_COLUMN = "raw_subcategories"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(0.5, gt=0, lt=1, description="v1 probability from which a label is predicted.")
    batch_size: int = Field(128, ge=1, description="Comments per forward pass when v1 predicts the holdout.")


def decide_labels(
    main_probabilities: np.ndarray, sub_probabilities: np.ndarray, *, threshold: float = 0.5
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """v1's label sets: main labels over ``threshold`` (the top one if none is), and for each a
    sub-category: those of its children over ``threshold``, else its best child. Normalised."""
    sub_column = {label: index for index, label in enumerate(SUB_LABELS)}
    decisions: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for main_row, sub_row in zip(main_probabilities, sub_probabilities, strict=True):
        mains = [label for label, p in zip(MAIN_LABELS, main_row, strict=True) if p >= threshold]
        if not mains:
            mains = [MAIN_LABELS[int(np.argmax(main_row))]]
        subs: list[str] = []
        for main in mains:
            children = SCHEMA[main]
            scores = [sub_row[sub_column[child]] for child in children]
            chosen = [child for child, p in zip(children, scores, strict=True) if p >= threshold]
            subs.extend(chosen or [children[int(np.argmax(scores))]])
        normal_mains, normal_subs, _ = normalise_labels(mains, subs)
        decisions.append((normal_mains, normal_subs))
    return decisions


def raw_labels(record: LabelledText) -> tuple[str, ...]:
    """The LLM's main labels exactly as written (before normalisation)."""
    raw = record.extra.get(RAW_LABELS_COLUMN)
    if isinstance(raw, (list, tuple)):
        return tuple(str(label) for label in raw)
    return record.labels


def raw_subcategories(record: LabelledText) -> tuple[str, ...]:
    raw = record.extra.get(RAW_SUBCATEGORIES_COLUMN)
    if isinstance(raw, (list, tuple)):
        return tuple(str(label) for label in raw)
    return record.subcategories


@dataclass
class Agreement:
    agreed: np.ndarray  # bool per row, after normalisation
    agreed_raw: np.ndarray  # bool per row, before normalisation
    report: dict[str, Any]


def _rate(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def agreement(
    records: Sequence[LabelledText], predicted: Sequence[tuple[tuple[str, ...], tuple[str, ...]]]
) -> Agreement:
    """Compare v1's decisions with the LLM labels of ``records`` (same order)."""
    if len(records) != len(predicted):
        raise ValueError(f"{len(records)} records but {len(predicted)} predictions")
    total = len(records)
    agreed = np.zeros(total, dtype=bool)
    agreed_raw = np.zeros(total, dtype=bool)
    sub_agreed = np.zeros(total, dtype=bool)
    changed = 0
    unknown: dict[str, int] = {}
    counts = {
        stage: {label: {"llm": 0, "v1": 0, "both": 0, "agreed": 0} for label in MAIN_LABELS}
        for stage in ("before", "after")
    }
    for row, (record, (v1_mains, v1_subs)) in enumerate(zip(records, predicted, strict=True)):
        raw = tuple(dict.fromkeys(label.strip() for label in raw_labels(record)))
        mains, subs, dropped = normalise_labels(raw, raw_subcategories(record))
        for name in dropped:
            unknown[name] = unknown.get(name, 0) + 1
        changed += set(raw) != set(mains)
        agreed_raw[row] = set(raw) == set(v1_mains)
        agreed[row] = set(mains) == set(v1_mains)
        sub_agreed[row] = agreed[row] and set(subs) == set(v1_subs)
        for stage, llm_set, ok in (("before", set(raw), agreed_raw[row]), ("after", set(mains), agreed[row])):
            for label in MAIN_LABELS:
                in_llm, in_v1 = label in llm_set, label in v1_mains
                entry = counts[stage][label]
                entry["llm"] += in_llm
                entry["v1"] += in_v1
                entry["both"] += in_llm and in_v1
                entry["agreed"] += in_llm and bool(ok)

    def per_category(stage: str) -> dict[str, dict[str, float | int]]:
        return {
            label: {**entry, "agreement": _rate(entry["agreed"], entry["llm"])}
            for label, entry in counts[stage].items()
        }

    report = {
        "rows": total,
        "before_normalisation": {
            "agreed": int(agreed_raw.sum()),
            "agreement": _rate(int(agreed_raw.sum()), total),
            "per_category": per_category("before"),
        },
        "after_normalisation": {
            "agreed": int(agreed.sum()),
            "agreement": _rate(int(agreed.sum()), total),
            "per_category": per_category("after"),
            "agreed_with_subcategories": int(sub_agreed.sum()),
            "subcategory_agreement": _rate(int(sub_agreed.sum()), total),
        },
        "normalisation": {
            "rows_changed": changed,
            "unknown_labels_dropped": dict(sorted(unknown.items(), key=lambda item: -item[1])),
        },
    }
    return Agreement(agreed=agreed, agreed_raw=agreed_raw, report=report)


def annotate(
    records: Sequence[LabelledText],
    predicted: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
    result: Agreement,
) -> list[LabelledText]:
    """The holdout rows with v1's labels and the agreement flags added (the curation input)."""
    annotated: list[LabelledText] = []
    for row, (record, (v1_mains, v1_subs)) in enumerate(zip(records, predicted, strict=True)):
        extra = dict(record.extra)
        extra.update(
            {
                "v1_labels": list(v1_mains),
                "v1_subcategories": list(v1_subs),
                "agreed": bool(result.agreed[row]),
                "agreed_before_normalisation": bool(result.agreed_raw[row]),
            }
        )
        annotated.append(
            LabelledText(
                id=record.id,
                text=record.text,
                labels=record.labels,
                subcategories=record.subcategories,
                source=record.source,
                extra=extra,
            )
        )
    return annotated


def agree_files(
    model_dir: Path,
    holdout: Path,
    out_dir: Path,
    *,
    settings: Settings,
    table_format: str = "jsonl",
    progress: bool = True,
) -> dict[str, Any]:
    """Predict, compare, write the annotated holdout and the reports; return the report."""
    from training.evaluation.markdown import agreement_markdown
    from training.evaluation.predictors import CheckpointPredictor
    from training.evaluation.scoring import evaluate
    from training.provenance import data_file
    from training.tables import read_labelled, write_json, write_labelled, write_text

    records = read_labelled(holdout, default_source="llm", require_labels=False)
    predictor = CheckpointPredictor(model_dir, batch_size=settings.batch_size)
    probabilities = predictor.probabilities([record.text for record in records], progress=progress)
    predicted = decide_labels(probabilities["main"], probabilities["sub"], threshold=settings.threshold)
    result = agreement(records, predicted)
    write_labelled(table_path(out_dir, ANNOTATED_TABLE, table_format), annotate(records, predicted, result))
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


def annotated_holdout(layout: RunLayout) -> Path:
    return layout.table(SECTION, ANNOTATED_TABLE)


enabled = train_v1.enabled  # v1 predicts the holdout


def inputs(layout: RunLayout) -> list[Path]:
    return [layout.model(train_v1.SECTION), layout.table(train_v1.SECTION, train_v1.HOLDOUT)]


def outputs(layout: RunLayout) -> list[Path]:
    return [annotated_holdout(layout), layout.dir(SECTION) / "report.json"]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    model, holdout = inputs(layout)
    agree_files(
        model,
        holdout,
        layout.dir(SECTION),
        settings=settings,
        table_format=layout.config.table_format,
        progress=progress,
    )
