"""Optimisation settings of one model (a section of the pipeline config). Pydantic only: importing
this does not import torch, so the CLI and the config loader stay fast."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainingSettings(BaseModel):
    """How one classifier is fine-tuned. Defaults are the reference settings for a GPU run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(3, ge=1, description="Passes over the training data (an upper bound with early stopping).")
    batch_size: int = Field(32, ge=1, description="Comments per optimisation step.")
    eval_batch_size: int = Field(128, ge=1, description="Comments per forward pass when predicting.")
    learning_rate: float = Field(2e-5, gt=0, description="AdamW peak learning rate of the encoder.")
    head_learning_rate: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate of the freshly initialised heads and feature projection "
        "(default: learning_rate). Higher values let small runs move the heads past the label priors.",
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Share of steps of linear warm-up.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_sequence_length: int = Field(64, ge=4, le=512, description="Tokens per comment after truncation.")
    dropout: float = Field(0.3, ge=0, lt=1, description="Dropout before the classification heads.")
    pooling: Literal["mean", "cls"] = Field("mean", description="How token states become one vector.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU that has it, else fp16 on GPU; always fp32 on CPU."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    early_stopping_patience: int = Field(
        0, ge=0, description="Stop after this many epochs without validation improvement (0: never)."
    )
    monitor: Literal["macro_f1", "loss"] = Field(
        "macro_f1", description="Validation figure for early stopping: first head's macro-F1 at 0.5, or loss."
    )
    freeze_embeddings: bool = Field(
        False,
        description="Keep the word-embedding matrix fixed: much faster on CPU for large-vocabulary encoders "
        "(e5: 96M of its 118M weights), usually at a small cost in accuracy.",
    )
    keep_checkpoints: bool = Field(
        False, description="Keep the per-epoch resume checkpoint after training finished (it holds optimizer state)."
    )


class EarlyStoppingSettings(TrainingSettings):
    """A model trained with a validation split (v2, information): epochs are an upper bound."""

    epochs: int = Field(5, ge=1, description="Upper bound on epochs; early stopping usually ends sooner.")
    early_stopping_patience: int = Field(2, ge=0, description="Epochs without validation improvement before stopping.")
