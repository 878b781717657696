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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.text import Preprocessing
from training.modeling.settings import TrainingSettings
from training.modeling.targets import information_targets
from training.records import LabelledText
from training.stages.split import stratified_validation_mask

if TYPE_CHECKING:
    from training.modeling.fine_tune import TrainedModel
    from training.modeling.trainer import EpochRecord

DEFAULT_ENCODER = "hfl/chinese-roberta-wwm-ext"


class InfoTrainingSettings(TrainingSettings):
    epochs: int = Field(5, ge=1, description="Upper bound on epochs; early stopping usually ends sooner.")
    early_stopping_patience: int = Field(2, ge=0, description="Epochs without validation improvement before stopping.")


class TrainInfoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Train (and export) the information model.")
    encoder: str = Field(DEFAULT_ENCODER, description="Hub id or local directory of the pretrained encoder.")
    source: Literal["manual", "curated"] = Field(
        "manual", description="manual: the manual labels; curated: the curated set (when no manual labels exist)."
    )
    negatives: Literal["routed", "all"] = Field("routed", description="Which non-information rows are negatives.")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="Share of each class held for validation.")
    training: InfoTrainingSettings = Field(default_factory=InfoTrainingSettings)


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


def train_info(
    train: Sequence[LabelledText],
    validation: Sequence[LabelledText],
    *,
    settings: TrainInfoSettings,
    preprocessing: Preprocessing,
    seed: int,
    work_dir: Path,
    fingerprint: str,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
) -> TrainedModel:
    """Fine-tune the information model (checkpoints and model under ``work_dir``)."""
    from training.modeling.fine_tune import fine_tune_information

    return fine_tune_information(
        train,
        encoder=settings.encoder,
        settings=settings.training,
        preprocessing=preprocessing,
        seed=seed,
        work_dir=work_dir,
        fingerprint=fingerprint,
        validation=validation,
        negatives=settings.negatives,
        on_epoch_end=on_epoch_end,
        progress=progress,
    )
