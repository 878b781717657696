"""Stage 7, train-info: the information model, information vs others, on manual labels.

Positives are rows labelled ``information`` (with or without another category). Negatives
(``negatives`` setting):

- ``routed`` (default): rows whose categories are all in {others, social}: at serving time the
  router sends exactly the comments the emotion model tops as ``others`` or ``social`` to this
  model, so those are the negatives it must reject; purely emotional rows are left out;
- ``all``: every row without ``information``.

The encoder's pooled output is joined with a 32-d projection of the five text features
(``service.text.text_features`` on the preprocessed text), standardised with the training
split's statistics; ``pos_weight`` = negatives / positives. The split is 80/20 stratified by class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.text import Preprocessing
from training.modeling.settings import EarlyStoppingSettings
from training.modeling.targets import information_targets
from training.records import LabelledText
from training.splits import TRAIN, VALIDATION, stratified_validation_mask
from training.stages import curate
from training.tables import table_path

if TYPE_CHECKING:
    from training.config import PipelineConfig
    from training.layout import RunLayout

NAME = "train-info"
SECTION = "train_info"
DESCRIPTION = "information vs others on manual labels"
DEFAULT_ENCODER = "hfl/chinese-roberta-wwm-ext"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Train (and export) the information model.")
    encoder: str = Field(DEFAULT_ENCODER, description="Hub id or local directory of the pretrained encoder.")
    source: Literal["manual", "curated"] = Field(
        "manual", description="manual: the manual labels; curated: the curated set (when no manual labels exist)."
    )
    negatives: Literal["routed", "all"] = Field("routed", description="Which non-information rows are negatives.")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="Share of each class held for validation.")
    training: EarlyStoppingSettings = Field(default_factory=EarlyStoppingSettings)


def split_information(
    records: Sequence[LabelledText], *, negatives: str, validation_fraction: float, seed: int
) -> tuple[list[LabelledText], list[LabelledText]]:
    """``(train, validation)`` of the rows the task uses, stratified by information vs not."""
    keep, targets = information_targets(records, negatives=negatives)
    used = [record for record, flag in zip(records, keep, strict=True) if flag]
    classes = [int(value) for value, flag in zip(targets[:, 0], keep, strict=True) if flag]
    validation = stratified_validation_mask(classes, validation_fraction=validation_fraction, seed=seed)
    train = [record for record, flag in zip(used, validation, strict=True) if not flag]
    held = [record for record, flag in zip(used, validation, strict=True) if flag]
    return train, held


def train_info_files(
    labels: Path,
    out_dir: Path,
    *,
    settings: Settings,
    preprocessing: Preprocessing,
    seed: int,
    table_format: str = "jsonl",
    fingerprint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Split ``labels`` 80/20 by class, write both tables, train into ``out_dir/model``; return a summary."""
    from training.hashing import training_fingerprint
    from training.modeling.fine_tune import fine_tune_information
    from training.tables import read_labelled, write_labelled

    records = read_labelled(labels, default_source="manual")
    train, validation = split_information(
        records, negatives=settings.negatives, validation_fraction=settings.validation_fraction, seed=seed
    )
    write_labelled(table_path(out_dir, TRAIN, table_format), train)
    write_labelled(table_path(out_dir, VALIDATION, table_format), validation)
    trained = fine_tune_information(
        train,
        encoder=settings.encoder,
        settings=settings.training,
        preprocessing=preprocessing,
        seed=seed,
        work_dir=out_dir,
        fingerprint=fingerprint or training_fingerprint(settings, preprocessing, seed, {"labels": labels}),
        validation=validation,
        negatives=settings.negatives,
        progress=progress,
    )
    return trained.summary(train=len(train), validation=len(validation))


def labels(layout: RunLayout) -> Path:
    """The rows this stage trains on: the manual labels, or the curated set (``source: curated``)."""
    if layout.config.train_info.source == "curated":
        return curate.curated_table(layout)
    assert layout.config.manual_labels is not None  # guaranteed by PipelineConfig validation
    return layout.config.manual_labels


def validation_table(layout: RunLayout) -> Path:
    """The information model's validation rows: export tunes its thresholds and evaluate scores it on them."""
    return layout.table(SECTION, VALIDATION)


def enabled(config: PipelineConfig) -> bool:
    return config.train_info.enabled


def inputs(layout: RunLayout) -> list[Path]:
    return [labels(layout)]


def outputs(layout: RunLayout) -> list[Path]:
    return [layout.model(SECTION), layout.table(SECTION, TRAIN), validation_table(layout)]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    config = layout.config
    train_info_files(
        labels(layout),
        layout.dir(SECTION),
        settings=settings,
        preprocessing=config.preprocessing,
        seed=config.seed,
        table_format=config.table_format,
        fingerprint=fingerprint,
        progress=progress,
    )
