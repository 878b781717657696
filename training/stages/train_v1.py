"""Stage 3, train-v1: BERT v1 on a sample of the pseudo-labelled texts; the rest is the holdout.

The sample (reference: 100K rows) is drawn uniformly at random, seeded (``training.stages.sample``).
v1 is the two-head classifier with plain (unweighted) BCE: it only has to be good enough to
separate the texts on which it agrees with the LLM from the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from service.text import Preprocessing
from training.modeling.settings import TrainingSettings
from training.records import LabelledText
from training.stages.sample import HOLDOUT, TEST, V1_TRAIN, assign_roles

if TYPE_CHECKING:
    from training.modeling.fine_tune import TrainedModel
    from training.modeling.trainer import EpochRecord

DEFAULT_ENCODER = "bert-base-chinese"


class TrainV1Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Run v1 and agree. Off: curate keeps only the manual labels (a demo without LLM labels).",
    )
    encoder: str = Field(DEFAULT_ENCODER, description="Hub id or local directory of the pretrained encoder.")
    sample_size: float = Field(
        100_000, ge=0, description="Rows that train v1: a count, or a share of the table when below 1."
    )
    test_size: float = Field(
        0, ge=0, description="Rows kept out of every stage to score the final models: a count or a share (0: none)."
    )
    pos_weight_cap: float | None = Field(
        None,
        ge=1,
        description="Class-weighted BCE as in v2 (neg/pos per label, capped); default: plain BCE as in the reference.",
    )
    training: TrainingSettings = Field(default_factory=TrainingSettings)


def split_for_v1(
    records: Sequence[LabelledText], *, settings: TrainV1Settings, seed: int
) -> dict[str, list[LabelledText]]:
    """``{"v1_train": [...], "holdout": [...], "test": [...]}`` (table order kept inside each part)."""
    roles = assign_roles(len(records), sample_size=settings.sample_size, test_size=settings.test_size, seed=seed)
    parts: dict[str, list[LabelledText]] = {V1_TRAIN: [], HOLDOUT: [], TEST: []}
    for record, role in zip(records, roles, strict=True):
        parts[str(role)].append(record)
    return parts


def train_v1(
    train: Sequence[LabelledText],
    *,
    settings: TrainV1Settings,
    preprocessing: Preprocessing,
    seed: int,
    work_dir: Path,
    fingerprint: str,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
) -> TrainedModel:
    """Fine-tune v1 on ``train`` (checkpoints and the finished model under ``work_dir``)."""
    from training.modeling.fine_tune import fine_tune_emotion

    return fine_tune_emotion(
        train,
        encoder=settings.encoder,
        settings=settings.training,
        preprocessing=preprocessing,
        seed=seed,
        work_dir=work_dir,
        fingerprint=fingerprint,
        pos_weight_cap=settings.pos_weight_cap,
        on_epoch_end=on_epoch_end,
        progress=progress,
    )
