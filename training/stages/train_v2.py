"""Stage 6, train-v2: the emotion model (BERT v2) on the curated set.

Same two-head architecture as v1; class-weighted BCE (``pos_weight`` = negatives / positives per
label from the training split, capped) and early stopping on the validation split's macro-F1
of the main head, keeping the best epoch. Reference: AdamW at 2e-5.

With ``information_head: true`` the model is the joint one (one encoder, the emotion heads and the
information head with its text features; ``training.modeling.classifiers.JointClassifier``): its
information head learns on the rows train-info would use (``information_negatives``), the export
writes one bundle the service serves without an information bundle, and train-info can be disabled.

``polarity_sets`` adds rows of public human-labelled Chinese emotion tables (``training.polarity_sets``)
to the training split only: early stopping and every reported figure stay on danmaku rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.text import Preprocessing
from training.modeling.settings import EarlyStoppingSettings
from training.polarity_sets import PolaritySet, polarity_rows
from training.splits import split_rows
from training.stages import curate
from training.stages.train_v1 import DEFAULT_ENCODER

if TYPE_CHECKING:
    from training.layout import RunLayout

NAME = "train-v2"
SECTION = "train_v2"
DESCRIPTION = "BERT v2 (emotion model), class-weighted, early stopping"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: str = Field(DEFAULT_ENCODER, description="Hub id or local directory of the pretrained encoder.")
    pos_weight_cap: float = Field(10.0, ge=1, description="Upper bound of the per-label positive class weight.")
    information_head: bool = Field(
        False, description="Train the joint model: the information head (with text features) on the same encoder."
    )
    information_negatives: Literal["routed", "all"] = Field(
        "routed", description="Negatives of the information head (as train_info.negatives)."
    )
    polarity_sets: list[PolaritySet] = Field(
        default_factory=list,
        description="Public emotion tables added to the training rows as polarity-only rows (never the "
        "tables an evaluation scores).",
    )
    training: EarlyStoppingSettings = Field(default_factory=EarlyStoppingSettings)


def train_v2_files(
    curated: Path,
    out_dir: Path,
    *,
    settings: Settings,
    preprocessing: Preprocessing,
    seed: int,
    fingerprint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train v2 on the ``train`` rows of a curated table, stopping early on its ``validation`` rows."""
    from training.hashing import training_fingerprint
    from training.modeling.fine_tune import fine_tune_emotion

    train, validation = split_rows(curated, default_source="curated")
    if not validation:
        raise ValueError("train-v2 needs a validation split for early stopping; the curated set has none")
    danmaku_rows = len(train)
    for polarity_set in settings.polarity_sets:
        train = [*train, *polarity_rows(polarity_set, seed=seed)]
    trained = fine_tune_emotion(
        train,
        encoder=settings.encoder,
        settings=settings.training,
        preprocessing=preprocessing,
        seed=seed,
        work_dir=out_dir,
        fingerprint=fingerprint
        or training_fingerprint(settings, preprocessing, seed, {"curated": curated, **polarity_inputs(settings)}),
        validation=validation,
        pos_weight_cap=settings.pos_weight_cap,
        information_negatives=settings.information_negatives if settings.information_head else None,
        progress=progress,
    )
    return trained.summary(train=len(train), polarity=len(train) - danmaku_rows, validation=len(validation))


def polarity_inputs(settings: Settings) -> dict[str, Path]:
    return {f"polarity_set_{number}": spec.path for number, spec in enumerate(settings.polarity_sets)}


def inputs(layout: RunLayout) -> list[Path]:
    return [curate.curated_table(layout), *polarity_inputs(layout.config.train_v2).values()]


def outputs(layout: RunLayout) -> list[Path]:
    return [layout.model(SECTION)]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    config = layout.config
    train_v2_files(
        curate.curated_table(layout),
        layout.dir(SECTION),
        settings=settings,
        preprocessing=config.preprocessing,
        seed=config.seed,
        fingerprint=fingerprint,
        progress=progress,
    )
