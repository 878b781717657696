"""Stage 3, train-v1: BERT v1 on a sample of the pseudo-labelled texts; the rest is the holdout.

The labelled table is split into three tables: the v1 training sample (reference: 100K rows),
drawn uniformly at random, seeded; an optional test set kept out of every stage so the final
models can be scored on rows no stage has seen; and the holdout, which v1 predicts for agree and
curate draws from. v1 is the two-head classifier with plain (unweighted) BCE: it only has to be
good enough to separate the texts on which it agrees with the LLM from the rest.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from service.text import Preprocessing
from training.modeling.settings import TrainingSettings
from training.records import LabelledText
from training.splits import stratified_validation_mask
from training.stages import llm_label
from training.tables import table_path

if TYPE_CHECKING:
    from training.config import PipelineConfig
    from training.layout import RunLayout

NAME = "train-v1"
SECTION = "train_v1"
DESCRIPTION = "sample N labels, train BERT v1; the rest is the holdout"

# The three parts of the labelled table, each written as a table of that name.
V1_TRAIN = "v1_train"
HOLDOUT = "holdout"
TEST = "test"

DEFAULT_ENCODER = "bert-base-chinese"


class Settings(BaseModel):
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
    test_strata: Literal["uniform", "source"] = Field(
        "uniform",
        description="How the test rows are drawn: uniformly, or stratified by source corpus x main label "
        "(every corpus and class keeps its share, so per-source figures stand on enough rows).",
    )
    pos_weight_cap: float | None = Field(
        None,
        ge=1,
        description="Class-weighted BCE as in v2 (neg/pos per label, capped); default: plain BCE as in the reference.",
    )
    training: TrainingSettings = Field(default_factory=TrainingSettings)


def resolve_size(size: float, total: int, *, name: str) -> int:
    """``size`` as a row count: a float in (0, 1) is a share of ``total``, anything else a count."""
    if size < 0:
        raise ValueError(f"{name} must be >= 0, got {size}")
    count = round(size * total) if 0 < size < 1 else int(size)
    if count != size and not 0 < size < 1:
        raise ValueError(f"{name} must be a whole number of rows or a share in (0, 1), got {size}")
    return count


def assign_roles(
    total: int, *, sample_size: float, test_size: float = 0, seed: int, strata: Sequence[Hashable] | None = None
) -> np.ndarray:
    """Role of every row (``V1_TRAIN``, ``TEST`` or ``HOLDOUT``), drawn at random, seeded.

    The v1 sample is uniform. The test rows are uniform too, or, with ``strata`` (one key per row),
    ``round(share * n)`` rows of every stratum of n rows (``training.splits``), drawn first."""
    train_count = resolve_size(sample_size, total, name="sample_size")
    test_count = resolve_size(test_size, total, name="test_size")
    if train_count < 1:
        raise ValueError(f"sample_size={sample_size} gives no v1 training rows out of {total}")
    if train_count + test_count >= total:
        raise ValueError(
            f"sample_size={sample_size} ({train_count} rows) + test_size={test_size} ({test_count} rows) "
            f"leave no holdout out of {total} rows; lower them"
        )
    roles = np.full(total, HOLDOUT, dtype=object)
    if strata is not None:
        if len(strata) != total:
            raise ValueError(f"{len(strata)} strata for {total} rows")
        test = stratified_validation_mask(strata, validation_fraction=test_count / total, seed=seed)
        roles[test] = TEST
        rest = np.flatnonzero(~test)
        roles[rest[np.random.default_rng(seed).permutation(len(rest))[:train_count]]] = V1_TRAIN
        return roles
    order = np.random.default_rng(seed).permutation(total)
    roles[order[:train_count]] = V1_TRAIN
    roles[order[train_count : train_count + test_count]] = TEST
    return roles


def test_stratum(record: LabelledText) -> str:
    """``source/main label`` of a row (its first label; ``others`` when it has none)."""
    return f"{record.source}/{record.labels[0] if record.labels else 'others'}"


def split_for_v1(records: Sequence[LabelledText], *, settings: Settings, seed: int) -> dict[str, list[LabelledText]]:
    """``{"v1_train": [...], "holdout": [...], "test": [...]}`` (table order kept inside each part)."""
    strata = [test_stratum(record) for record in records] if settings.test_strata == "source" else None
    roles = assign_roles(
        len(records), sample_size=settings.sample_size, test_size=settings.test_size, seed=seed, strata=strata
    )
    parts: dict[str, list[LabelledText]] = {V1_TRAIN: [], HOLDOUT: [], TEST: []}
    for record, role in zip(records, roles, strict=True):
        parts[str(role)].append(record)
    return parts


def train_v1_files(
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
    """Read ``labels``, write the three tables, train v1 into ``out_dir/model``; return a summary."""
    from training.hashing import training_fingerprint
    from training.modeling.fine_tune import fine_tune_emotion
    from training.tables import read_labelled, write_labelled

    # An LLM may leave a comment without labels; normalisation makes it `others`, as the schema says.
    records = read_labelled(labels, default_source="llm", require_labels=False)
    parts = split_for_v1(records, settings=settings, seed=seed)
    for name, rows in parts.items():
        write_labelled(table_path(out_dir, name, table_format), rows)
    trained = fine_tune_emotion(
        parts[V1_TRAIN],
        encoder=settings.encoder,
        settings=settings.training,
        preprocessing=preprocessing,
        seed=seed,
        work_dir=out_dir,
        fingerprint=fingerprint or training_fingerprint(settings, preprocessing, seed, {"labels": labels}),
        pos_weight_cap=settings.pos_weight_cap,
        progress=progress,
    )
    return {"rows": {role: len(rows) for role, rows in parts.items()}, "model": str(trained.directory)}


def labels(layout: RunLayout) -> Path:
    """The table this stage starts from: llm-label's output when it is configured, else ``labels``."""
    if layout.config.llm_label is not None:
        return llm_label.labels_table(layout)
    assert layout.config.labels is not None  # guaranteed by PipelineConfig validation
    return layout.config.labels


def enabled(config: PipelineConfig) -> bool:
    return config.train_v1.enabled


def inputs(layout: RunLayout) -> list[Path]:
    return [labels(layout)]


def outputs(layout: RunLayout) -> list[Path]:
    return [layout.model(SECTION), *(layout.table(SECTION, name) for name in (V1_TRAIN, HOLDOUT, TEST))]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    config = layout.config
    train_v1_files(
        labels(layout),
        layout.dir(SECTION),
        settings=settings,
        preprocessing=config.preprocessing,
        seed=config.seed,
        table_format=config.table_format,
        fingerprint=fingerprint,
        progress=progress,
    )
