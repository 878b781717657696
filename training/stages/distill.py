"""Stage distill (optional, off by default): a smaller or equal student learns from the trained
emotion model (knowledge distillation with teacher annealing).

The teacher (``teachers[0]``, default train-v2's model; several: an ensemble whose logits are
averaged) scores, once and resumably, the curated ``train`` rows plus ``sample_size`` unique
unlabelled texts drawn (seeded) from ingest's texts table (every corpus), leaving out texts of the
curated set and of train-v1's test table. The student is the teacher's network with
``student_layers`` evenly spaced encoder layers kept (or ``student_layer_indices``), heads copied.
It learns the teacher's soft targets at ``temperature`` (binary KL per label, × T²) and, on the
labelled rows with ``annealing``, a target moving linearly from the teacher's prediction to the
gold label over training (λ 0 → 1, Clark et al. 2019); optionally intermediate layers
(``intermediate``: ``ffn`` each student layer's output against its teacher layer, ``ffn+cls`` plus
the final [CLS] state). Early stopping on the curated ``validation`` rows, as train-v2.
``mode: labels-only`` trains the same student on the labelled rows alone (the baseline without
distillation), through the same code. The losses are in ``training.modeling.distillation``.

Writes ``distill/model/`` (the train-v2 format: ``export.emotion_model: distill`` exports it) and
``distill/teacher/`` (the teacher's logits, chunked).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.modeling.settings import EarlyStoppingSettings
from training.splits import split_rows
from training.stages import curate, llm_label, train_v1

if TYPE_CHECKING:
    from training.config import PipelineConfig
    from training.layout import RunLayout

log = logging.getLogger(__name__)

NAME = "distill"
SECTION = "distill"
DESCRIPTION = "student of the emotion model: soft targets + teacher annealing on unlabelled texts"

TeacherModel = Literal["train_v2", "train_v1"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Train a distilled student of the emotion model.")
    mode: Literal["distill", "labels-only"] = Field(
        "distill",
        description="distill: teacher soft targets (+ annealing); labels-only: the same student on the labelled "
        "rows alone (the baseline without distillation).",
    )
    teachers: list[TeacherModel] = Field(
        ["train_v2"],
        min_length=1,
        description="Trained models that teach (the first one gives the student's network); several: an "
        "ensemble, logits averaged. train_v1 has other training data but the same heads.",
    )
    sample_size: int = Field(
        200_000, ge=0, description="Unique unlabelled texts drawn (seeded) from ingest's texts table."
    )
    temperature: float = Field(2.0, gt=0, description="Softmax/sigmoid temperature of the soft targets.")
    annealing: bool = Field(
        True,
        description="Teacher annealing on labelled rows (target from teacher prediction to gold label, λ 0→1 "
        "linearly over training); off: every row learns the soft targets (plain KD).",
    )
    student_layers: int | None = Field(
        None, ge=1, description="Encoder layers of the student, evenly spaced over the teacher's (default: all)."
    )
    student_layer_indices: list[int] | None = Field(
        None, description="Or exactly these 0-based teacher layers (e.g. 1 3 5 7 9 11)."
    )
    intermediate: Literal["none", "ffn", "ffn+cls"] = Field(
        "none",
        description="Intermediate-layer distillation: ffn = each student layer's output (after its feed-forward "
        "block) against its teacher layer; ffn+cls = also the final [CLS] state. Runs the teacher per batch.",
    )
    intermediate_loss: Literal["mse", "kl"] = Field(
        "mse", description="Distance of the intermediate states: mse, or kl over the softmax of each token's state."
    )
    intermediate_weight: float = Field(1.0, ge=0, description="Weight of the intermediate losses in the sum.")
    pos_weight_cap: float = Field(10.0, ge=1, description="Upper bound of the per-label positive class weight.")
    score_chunk_rows: int = Field(8192, ge=1, description="Rows per resumable chunk of teacher scoring.")
    training: EarlyStoppingSettings = Field(default_factory=EarlyStoppingSettings)

    @model_validator(mode="after")
    def _one_layer_choice(self) -> Settings:
        if self.student_layers is not None and self.student_layer_indices is not None:
            raise ValueError("set student_layers (a count) or student_layer_indices, not both")
        return self

    def layers(self) -> list[int] | int | None:
        """What ``distillation.student_from_teacher`` takes: indices, a count, or None (all)."""
        return self.student_layer_indices if self.student_layer_indices is not None else self.student_layers

    def reads_unlabelled(self) -> bool:
        return self.mode == "distill" and self.sample_size > 0


def sample_unlabelled(table: Path, *, sample_size: int, seed: int, exclude: set[str]) -> list[str]:
    """``sample_size`` distinct texts of ``table`` (ingest's ``texts.parquet`` or any texts table) that
    are not in ``exclude``, drawn with ``seed``; all of them when fewer remain."""
    from training.llm.tables import read_texts_table

    texts = sorted({text for _, text in read_texts_table(table) if text not in exclude})
    if sample_size < len(texts):
        texts = random.Random(seed).sample(texts, sample_size)
    return texts


def distill_files(
    teachers: Sequence[Path],
    curated: Path,
    out_dir: Path,
    *,
    settings: Settings,
    seed: int,
    unlabelled: Path | None = None,
    exclude: Sequence[Path] = (),
    fingerprint: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the student into ``out_dir/model`` on the curated ``train`` rows (+ the unlabelled sample of
    ``unlabelled`` in distill mode, without the texts of ``curated`` and the ``exclude`` tables)."""
    from training.hashing import training_fingerprint
    from training.modeling.fine_tune import fine_tune_student
    from training.modeling.saved import read_card
    from training.tables import read_labelled

    train, validation = split_rows(curated, default_source="curated")
    if not validation:
        raise ValueError("distill needs a validation split for early stopping; the curated set has none")
    texts: list[str] = []
    if settings.reads_unlabelled():
        if unlabelled is None:
            raise ValueError("distill mode needs an unlabelled texts table (ingest's texts.parquet)")
        seen = {record.text.strip() for record in (*train, *validation)}
        for path in exclude:
            seen.update(record.text.strip() for record in read_labelled(path))
        texts = sample_unlabelled(unlabelled, sample_size=settings.sample_size, seed=seed, exclude=seen)
        log.info(
            "distill: %d unlabelled texts (of %d asked) + %d labelled rows",
            len(texts),
            settings.sample_size,
            len(train),
        )
    inputs = {f"teacher_{index}": path for index, path in enumerate(teachers)} | {"curated": curated}
    if settings.reads_unlabelled() and unlabelled is not None:
        inputs["unlabelled"] = unlabelled
    inputs |= {f"exclude_{index}": path for index, path in enumerate(exclude)}
    trained = fine_tune_student(
        list(teachers),
        train,
        texts,
        settings=settings.training,
        seed=seed,
        work_dir=out_dir,
        fingerprint=fingerprint or training_fingerprint(settings, read_card(teachers[0]).preprocessing, seed, inputs),
        validation=validation,
        layers=settings.layers(),
        mode=settings.mode,
        temperature=settings.temperature,
        annealing=settings.annealing,
        intermediate=settings.intermediate,
        intermediate_loss=settings.intermediate_loss,
        intermediate_weight=settings.intermediate_weight,
        pos_weight_cap=settings.pos_weight_cap,
        score_chunk_rows=settings.score_chunk_rows,
        progress=progress,
    )
    summary = trained.summary(train=len(train), unlabelled=len(texts), validation=len(validation))
    summary["distillation"] = trained.card.training.get("distillation")
    return summary


def teacher_models(layout: RunLayout) -> list[Path]:
    return [layout.model(section) for section in layout.config.distill.teachers]


def unlabelled_table(layout: RunLayout) -> Path:
    """Ingest's unique texts (every corpus) when ingest runs, else the ``texts`` table."""
    return llm_label.texts(layout)


def excluded_tables(layout: RunLayout) -> list[Path]:
    """Tables whose texts never enter the unlabelled sample: train-v1's test rows (scored at the end)."""
    return [layout.table(train_v1.SECTION, train_v1.TEST)] if layout.config.train_v1.enabled else []


def enabled(config: PipelineConfig) -> bool:
    return config.distill.enabled


def inputs(layout: RunLayout) -> list[Path]:
    settings = layout.config.distill
    return [
        *teacher_models(layout),
        curate.curated_table(layout),
        *([unlabelled_table(layout)] if settings.reads_unlabelled() else []),
        *excluded_tables(layout),
    ]


def outputs(layout: RunLayout) -> list[Path]:
    return [layout.model(SECTION)]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    distill_files(
        teacher_models(layout),
        curate.curated_table(layout),
        layout.dir(SECTION),
        settings=settings,
        seed=layout.config.seed,
        unlabelled=unlabelled_table(layout) if settings.reads_unlabelled() else None,
        exclude=excluded_tables(layout),
        fingerprint=fingerprint,
        progress=progress,
    )
