"""The two networks of the pipeline, on any Hugging Face encoder (hub id or local directory).

- ``MultiHeadClassifier``: BERT v1/v2 — pooled encoder output -> dropout -> two linear heads
  (main categories, sub-categories), trained with BCE-with-logits (multi-label).
- ``InformationClassifier``: the information model — pooled encoder output concatenated with a
  32-d projection of the standardised text features -> one logit (information vs others).
- ``JointClassifier``: both on one encoder — the two emotion heads on the pooled output and the
  information head on the pooled output joined with the projected text features, so serving runs
  one encoder pass per comment instead of up to two.

All return logits only; the ONNX export names them (``main_logits``, ``sub_logits``,
``information_logits``) and serving applies the activation recorded in ``bundle.json``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel

Pooling = Literal["cls", "mean"]


def load_encoder(name_or_path: str) -> PreTrainedModel:
    """A pretrained encoder from a hub id or a local directory (``AutoModel``, no task head)."""
    encoder: PreTrainedModel = AutoModel.from_pretrained(name_or_path, add_pooling_layer=False)
    return encoder


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class MultiHeadClassifier(nn.Module):
    """Encoder + main-category head + sub-category head (multi-label logits)."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        *,
        num_main: int,
        num_sub: int,
        dropout: float = 0.3,
        pooling: Pooling = "mean",
    ) -> None:
        super().__init__()
        hidden = int(encoder.config.hidden_size)
        self.encoder = encoder
        self.pooling: Pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.main_head = nn.Linear(hidden, num_main)
        self.sub_head = nn.Linear(hidden, num_sub)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        pooled = self.dropout(pool(hidden, attention_mask, self.pooling))
        return self.main_head(pooled), self.sub_head(pooled)


def set_feature_statistics(mean: torch.Tensor, std: torch.Tensor, features: torch.Tensor) -> None:
    """Fill the ``mean``/``std`` buffers from the training features (std floored to avoid /0)."""
    mean.copy_(features.float().mean(dim=0))
    std.copy_(features.float().std(dim=0, unbiased=False).clamp(min=1e-3))


def standardise(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Raw text features standardised with the training statistics (inside the exported graph)."""
    return (features.to(dtype) - mean) / std


class FeatureProjection(nn.Module):
    """Raw text features -> standardised (training-split statistics, kept as buffers so the exported
    graph standardises itself) -> ``feature_dim`` ReLU units."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, num_features: int, feature_dim: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))
        self.projection = nn.Sequential(nn.Linear(num_features, feature_dim), nn.ReLU())

    def set_statistics(self, features: torch.Tensor) -> None:
        set_feature_statistics(self.feature_mean, self.feature_std, features)

    def forward(self, features: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        projected: torch.Tensor = self.projection(standardise(features, self.feature_mean, self.feature_std, dtype))
        return projected


class JointClassifier(nn.Module):
    """One encoder, three heads: main + sub-category (emotion model) and information (with text features)."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        *,
        num_main: int,
        num_sub: int,
        num_features: int,
        feature_dim: int = 32,
        dropout: float = 0.3,
        pooling: Pooling = "mean",
    ) -> None:
        super().__init__()
        hidden = int(encoder.config.hidden_size)
        self.encoder = encoder
        self.pooling: Pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.main_head = nn.Linear(hidden, num_main)
        self.sub_head = nn.Linear(hidden, num_sub)
        self.features = FeatureProjection(num_features, feature_dim)
        self.information_head = nn.Linear(hidden + feature_dim, 1)

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        self.features.set_statistics(features)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        features: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        pooled = pool(hidden, attention_mask, self.pooling)
        dropped = self.dropout(pooled)
        joined = self.dropout(torch.cat([pooled, self.features(features, pooled.dtype)], dim=-1))
        return self.main_head(dropped), self.sub_head(dropped), self.information_head(joined)


class InformationClassifier(nn.Module):
    """Encoder + projected text features -> one 'information' logit.

    ``feature_mean``/``feature_std`` are buffers set from the training data, so the exported
    graph standardises raw features itself and serving passes ``service.text.text_features``.
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(
        self,
        encoder: PreTrainedModel,
        *,
        num_features: int,
        feature_dim: int = 32,
        dropout: float = 0.3,
        pooling: Pooling = "mean",
    ) -> None:
        super().__init__()
        hidden = int(encoder.config.hidden_size)
        self.encoder = encoder
        self.pooling: Pooling = pooling
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))
        self.feature_projection = nn.Sequential(nn.Linear(num_features, feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden + feature_dim, 1)

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        set_feature_statistics(self.feature_mean, self.feature_std, features)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        features: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        pooled = pool(hidden, attention_mask, self.pooling)
        standardised = standardise(features, self.feature_mean, self.feature_std, pooled.dtype)
        joined = torch.cat([pooled, self.feature_projection(standardised)], dim=-1)
        logits: torch.Tensor = self.classifier(self.dropout(joined))
        return logits
