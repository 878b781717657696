"""Stage 5, curate: the training set of BERT v2, drawn from the agreement results and manual labels.

Reference sampling (rates configurable), every row tagged with its ``provenance``:

- ``agreed``: holdout rows where v1 and the LLM agree on a set other than {others} (100%);
- ``agreed_others``: agreed rows labelled only ``others`` (15%: others floods the data);
- ``disagreed_to_others``: disagreed rows, relabelled ``others``/``other`` (5%: teaches the model
  that ambiguous comments are ``others``; the LLM's labels stay in ``llm_labels``);
- ``manual``: human labels (100%); a holdout row with the same text as a manual row is dropped.

Draws are exact (``round(rate * n)`` rows, without replacement), seeded, one random stream per
pool so changing one rate leaves the other draws as they were. Then a stratified 80/20
train/validation split by primary main category. Pure: returns records, counts and masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from training.modeling.targets import normalised
from training.records import LabelledText
from training.splits import SPLIT_COLUMN, TRAIN, VALIDATION, stratified_validation_mask
from training.stages import agree, train_v1
from training.tables import table_path
from training.taxonomy import OTHERS

if TYPE_CHECKING:
    from training.layout import RunLayout

NAME = "curate"
SECTION = "curate"
DESCRIPTION = "agreed/disagreed sampling + manual labels, 80/20 split"
CURATED_TABLE = "curated"

AGREED = "agreed"
AGREED_OTHERS = "agreed_others"
DISAGREED_TO_OTHERS = "disagreed_to_others"
MANUAL = "manual"
PROVENANCES = (AGREED, AGREED_OTHERS, DISAGREED_TO_OTHERS, MANUAL)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agreed_rate: float = Field(1.0, ge=0, le=1, description="Share kept of agreed rows not labelled only others.")
    agreed_others_rate: float = Field(0.15, ge=0, le=1, description="Share kept of agreed rows labelled others.")
    disagreed_to_others_rate: float = Field(
        0.05, ge=0, le=1, description="Share of disagreed rows kept and relabelled others."
    )
    manual_rate: float = Field(1.0, ge=0, le=1, description="Share kept of the manual labels.")
    v1_sample_as_manual: bool = Field(
        False,
        description="Add v1's training sample to the manual labels: where no human labels exist, the "
        "(strong-)LLM labels v1 learnt from stand in for them. They are in no holdout, so without this "
        "they never reach v2.",
    )
    validation_fraction: float = Field(0.2, ge=0, lt=1, description="Share of each category held for validation.")


@dataclass
class Curated:
    records: list[LabelledText]  # every kept row, with extra provenance and split
    validation: np.ndarray  # bool per kept row
    counts: dict[str, Any]

    def split(self, name: str) -> list[LabelledText]:
        wanted = name == VALIDATION
        return [record for record, flag in zip(self.records, self.validation, strict=True) if bool(flag) == wanted]


def _draw(indices: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    count = round(rate * len(indices))
    return np.sort(rng.choice(indices, size=count, replace=False)) if count else indices[:0]


def _with(record: LabelledText, labels: tuple[str, ...], subs: tuple[str, ...], **extra: Any) -> LabelledText:
    merged = dict(record.extra)
    merged.update(extra)
    return LabelledText(
        id=record.id, text=record.text, labels=labels, subcategories=subs, source=record.source, extra=merged
    )


def curate(
    holdout: Sequence[LabelledText],
    agreed: Sequence[bool] | np.ndarray,
    manual: Sequence[LabelledText] = (),
    *,
    settings: Settings,
    seed: int,
) -> Curated:
    """Select, relabel and split (see the module docstring)."""
    agreed = np.asarray(agreed, dtype=bool)
    if len(agreed) != len(holdout):
        raise ValueError(f"{len(holdout)} holdout rows but {len(agreed)} agreement flags")
    manual_texts = {record.text for record in manual}
    in_manual = np.fromiter((record.text in manual_texts for record in holdout), dtype=bool, count=len(holdout))
    labels = [normalised(record) for record in holdout]
    only_others = np.fromiter((set(mains) == {OTHERS} for mains, _ in labels), dtype=bool, count=len(holdout))
    pools = {
        AGREED: np.flatnonzero(agreed & ~only_others & ~in_manual),
        AGREED_OTHERS: np.flatnonzero(agreed & only_others & ~in_manual),
        DISAGREED_TO_OTHERS: np.flatnonzero(~agreed & ~in_manual),
        MANUAL: np.arange(len(manual)),
    }
    rates = {
        AGREED: settings.agreed_rate,
        AGREED_OTHERS: settings.agreed_others_rate,
        DISAGREED_TO_OTHERS: settings.disagreed_to_others_rate,
        MANUAL: settings.manual_rate,
    }
    chosen = {
        name: _draw(pool, rates[name], np.random.default_rng([seed, index]))
        for index, (name, pool) in enumerate(pools.items())
    }
    records: list[LabelledText] = []
    for index in chosen[AGREED]:
        mains, subs = labels[index]
        records.append(_with(holdout[index], mains, subs, provenance=AGREED))
    for index in chosen[AGREED_OTHERS]:
        mains, subs = labels[index]
        records.append(_with(holdout[index], mains, subs, provenance=AGREED_OTHERS))
    for index in chosen[DISAGREED_TO_OTHERS]:
        mains, subs = labels[index]
        records.append(
            _with(
                holdout[index],
                (OTHERS,),
                ("other",),
                provenance=DISAGREED_TO_OTHERS,
                llm_labels=list(mains),
                llm_subcategories=list(subs),
            )
        )
    for index in chosen[MANUAL]:
        mains, subs = normalised(manual[index])
        records.append(_with(manual[index], mains, subs, provenance=MANUAL))

    validation = stratified_validation_mask(
        [record.labels[0] for record in records],
        validation_fraction=settings.validation_fraction,
        seed=seed,
    )
    records = [
        _with(record, record.labels, record.subcategories, **{SPLIT_COLUMN: VALIDATION if flag else TRAIN})
        for record, flag in zip(records, validation, strict=True)
    ]
    composition: dict[str, int] = {}
    for record in records:
        for label in record.labels:
            composition[label] = composition.get(label, 0) + 1
    counts = {
        "rows": len(records),
        "train": int((~validation).sum()),
        "validation": int(validation.sum()),
        "pools": {name: len(pool) for name, pool in pools.items()},
        "kept": {name: len(rows) for name, rows in chosen.items()},
        "rates": rates,
        "holdout_rows_dropped_as_manual_duplicates": int(in_manual.sum()),
        "labels": dict(sorted(composition.items(), key=lambda item: -item[1])),
    }
    return Curated(records=records, validation=validation, counts=counts)


def curate_files(
    holdout: Path | None,
    manual: Path | Sequence[Path] | None,
    out_dir: Path,
    *,
    settings: Settings,
    seed: int,
    table_format: str = "jsonl",
) -> dict[str, Any]:
    """Read the annotated holdout and manual labels, curate, write the table and reports."""
    from training.evaluation.markdown import curation_markdown
    from training.provenance import data_file
    from training.tables import TableError, read_labelled, write_json, write_labelled, write_text

    manual_paths = [manual] if isinstance(manual, Path) else list(manual or ())
    if holdout is None and not manual_paths:
        raise ValueError("curate needs an annotated holdout, manual labels, or both")
    records = read_labelled(holdout, default_source="llm", require_labels=False) if holdout else []
    missing = [record.id for record in records if "agreed" not in record.extra]
    if holdout and missing:
        raise TableError(
            holdout, f"{len(missing)} rows lack the 'agreed' column (first: {missing[0]!r}); run agree first"
        )
    agreed = [bool(record.extra["agreed"]) for record in records]
    manual_tables = [read_labelled(path, default_source="manual") for path in manual_paths]
    manual_records = [record for table in manual_tables for record in table]
    curated = curate(records, agreed, manual_records, settings=settings, seed=seed)
    write_labelled(table_path(out_dir, CURATED_TABLE, table_format), curated.records)
    counts = dict(curated.counts)
    counts["settings"] = settings.model_dump(mode="json")
    counts["seed"] = seed
    counts["data"] = [data_file(holdout, rows=len(records), role="holdout")] if holdout else []
    for path, table in zip(manual_paths, manual_tables, strict=True):
        counts["data"].append(data_file(path, rows=len(table), role="manual"))
    write_json(out_dir / "report.json", counts)
    write_text(out_dir / "report.md", curation_markdown(counts))
    return counts


def curated_table(layout: RunLayout) -> Path:
    """The curated set: train-v2's input, export's and evaluate's validation table of the emotion model."""
    return layout.table(SECTION, CURATED_TABLE)


def _holdout(layout: RunLayout) -> Path | None:
    return agree.annotated_holdout(layout) if train_v1.enabled(layout.config) else None


def _manual(layout: RunLayout) -> list[Path]:
    paths = [layout.config.manual_labels] if layout.config.manual_labels is not None else []
    if layout.config.curate.v1_sample_as_manual and train_v1.enabled(layout.config):
        paths.append(layout.table(train_v1.SECTION, train_v1.V1_TRAIN))
    return paths


def inputs(layout: RunLayout) -> list[Path]:
    return [path for path in (_holdout(layout), *_manual(layout)) if path is not None]


def outputs(layout: RunLayout) -> list[Path]:
    return [curated_table(layout), layout.dir(SECTION) / "report.json"]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    config = layout.config
    curate_files(
        _holdout(layout),
        _manual(layout),
        layout.dir(SECTION),
        settings=settings,
        seed=config.seed,
        table_format=config.table_format,
    )
