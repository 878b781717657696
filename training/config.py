"""The pipeline config (``danmaku-train run --config pipeline.yaml``): one section per stage, whose
settings class lives in the stage's module (``training/stages/<stage>.py``).

Every field has a default (the reference settings) and is validated before anything runs; an
unknown key or a bad value fails with its dotted key named. Relative paths are resolved against
the directory the command runs from (the repository root in the examples); an encoder that is
not an existing directory is taken as a hub id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.text import Preprocessing
from training.stages.agree import Settings as AgreeSettings
from training.stages.curate import Settings as CurationSettings
from training.stages.distill import Settings as DistillSettings
from training.stages.evaluate import Settings as EvaluateSettings
from training.stages.export import Settings as ExportSettings
from training.stages.ingest import Settings as IngestSettings
from training.stages.llm_label import Settings as LlmLabelSettings
from training.stages.train_info import Settings as TrainInfoSettings
from training.stages.train_v1 import Settings as TrainV1Settings
from training.stages.train_v2 import Settings as TrainV2Settings


class ConfigError(ValueError):
    """The pipeline config is missing, unreadable or invalid; the message names file and key."""


class PipelineConfig(BaseModel):
    """Everything one pipeline run needs. See configs/pipeline.example.yaml for every key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_dir: Path = Field(Path("runs/pipeline"), description="Where stages write tables, models and reports.")
    models_dir: Path = Field(Path("models"), description="Where the bundles are exported.")
    seed: int = Field(13, description="Seed of every random draw and of training.")
    table_format: Literal["jsonl", "parquet"] = Field("jsonl", description="Format of intermediate tables.")
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    labels: Path | None = Field(
        None,
        description="Labelled-text table that stage 3 starts from (LLM or teacher labels) when stages 1-2 are off.",
    )
    texts: Path | None = Field(
        None, description="Texts table stage 2 labels when stage 1 is off (ingest's texts.parquet, or JSONL/CSV)."
    )
    manual_labels: Path | None = Field(
        None, description="Human labels (JSONL/CSV/Parquet/Label Studio JSON): curated in full, train the info model."
    )
    ingest: IngestSettings | None = Field(None, description="Stage 1 settings; absent: stage 1 is skipped.")
    llm_label: LlmLabelSettings | None = Field(
        None, description="Stage 2 settings; absent: stage 2 is skipped and stage 3 starts from 'labels'."
    )
    train_v1: TrainV1Settings = Field(default_factory=TrainV1Settings)
    agree: AgreeSettings = Field(default_factory=AgreeSettings)
    curate: CurationSettings = Field(default_factory=CurationSettings)
    train_v2: TrainV2Settings = Field(default_factory=TrainV2Settings)
    train_info: TrainInfoSettings = Field(default_factory=TrainInfoSettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.train_v1.enabled and self.labels is None and self.llm_label is None:
            raise ValueError("set 'labels' (a labelled-text table) or configure 'llm_label' to produce one")
        if self.llm_label is not None and self.ingest is None and self.texts is None:
            raise ValueError("llm_label needs texts to label: configure 'ingest' or set 'texts' (a texts table)")
        if not self.train_v1.enabled and self.manual_labels is None:
            raise ValueError("train_v1.enabled is false, so the curated set is the manual labels: set 'manual_labels'")
        if self.train_info.enabled and self.train_info.source == "manual" and self.manual_labels is None:
            raise ValueError(
                "train_info.source is 'manual' but 'manual_labels' is not set; "
                "set it, use train_info.source: curated, or train_info.enabled: false"
            )
        scored = {path.resolve() for path in self.evaluate.tables}
        trained_on = [spec.path for spec in self.train_v2.polarity_sets if spec.path.resolve() in scored]
        if trained_on:
            raise ValueError(
                f"train_v2.polarity_sets trains on {[str(path) for path in trained_on]}, which evaluate.tables "
                "scores: a table the model learns from cannot measure it"
            )
        if self.distill.enabled and self.distill.reads_unlabelled() and self.ingest is None and self.texts is None:
            raise ValueError(
                "distill.mode is 'distill' but there are no unlabelled texts: configure 'ingest' or set 'texts', "
                "or use distill.sample_size: 0"
            )
        if self.distill.enabled and "train_v1" in self.distill.teachers and not self.train_v1.enabled:
            raise ValueError("distill.teachers names train_v1, but train_v1.enabled is false")
        if self.export.emotion_model == "distill" and not self.distill.enabled:
            raise ValueError("export.emotion_model is 'distill' but distill.enabled is false")
        if self.train_v2.information_head and self.train_info.enabled:
            raise ValueError(
                "train_v2.information_head is true (the joint model: its information head replaces the information "
                "model, and export writes one emotion bundle) but train_info.enabled is true too; "
                "set train_info.enabled: false, or train_v2.information_head: false for the two-bundle hierarchy"
            )
        return self

    @property
    def information_negatives(self) -> str:
        """Negatives of the model that decides ``information`` (the joint model's head, else train-info's)."""
        return self.train_v2.information_negatives if self.train_v2.information_head else self.train_info.negatives

    @property
    def serves_information(self) -> bool:
        """Whether export writes what the service needs for the whole hierarchy: an information bundle,
        or a joint emotion bundle carrying the information head."""
        return self.train_v2.information_head or self.train_info.enabled

    def section(self, name: str) -> Any:
        value = getattr(self, name)
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        + (f" (got {error['input']!r})" if error["type"] != "missing" and not isinstance(error["input"], dict) else "")
        for error in exc.errors()
    )


def parse_config(raw: Any, *, source: str = "<config>") -> PipelineConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a mapping of sections, got {type(raw).__name__}")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc


def load_config(path: Path | str) -> PipelineConfig:
    """Read and validate a YAML pipeline config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return parse_config(raw or {}, source=str(path))
