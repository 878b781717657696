"""A trained classifier on disk: everything needed to rebuild it without the original encoder.

    <dir>/classifier.json     ``ClassifierCard``: architecture, heads, preprocessing, base encoder
    <dir>/encoder/config.json the encoder's Hugging Face config (architecture only)
    <dir>/model.safetensors   every weight (encoder + heads + feature statistics)
    <dir>/tokenizer*          the tokenizer, saved with ``save_pretrained``

Written into a staging directory and renamed into place, so a crash never leaves half a model.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from service.bundle import Head, takes_features
from service.text import TEXT_FEATURE_NAMES, Preprocessing
from training.modeling.classifiers import InformationClassifier, JointClassifier, MultiHeadClassifier

CARD_FILE = "classifier.json"
WEIGHTS_FILE = "model.safetensors"


class ClassifierCard(BaseModel):
    """How to rebuild a trained classifier and what it predicts."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["multi_head", "information", "joint"] = Field(
        description="multi_head: main + sub heads; information: one head with text features; joint: all three "
        "on one encoder (main, sub, information)."
    )
    base_encoder: str = Field(description="Hub id or directory the encoder was fine-tuned from.")
    heads: list[Head] = Field(min_length=1, description="Heads in output order (labels per head).")
    max_sequence_length: int
    preprocessing: Preprocessing
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = 0.3
    feature_dim: int = 32
    training: dict[str, Any] = Field(default_factory=dict, description="Settings, history and data of the run.")

    @property
    def task(self) -> Literal["emotion", "information"]:
        """The bundle task it exports as: a joint model is an emotion bundle carrying the information head."""
        return "information" if self.kind == "information" else "emotion"

    @property
    def takes_features(self) -> bool:
        """Whether the network takes the text ``features`` input (the bundle contract's rule)."""
        return takes_features(self.task, self.heads)


def build_classifier(encoder: nn.Module, card: ClassifierCard) -> nn.Module:
    """The network of ``card`` around ``encoder`` (fresh heads)."""
    if card.kind == "multi_head":
        if [head.name for head in card.heads] != ["main", "sub"]:
            raise ValueError(f"a multi-head classifier has heads 'main' and 'sub', got {[h.name for h in card.heads]}")
        return MultiHeadClassifier(
            encoder,  # type: ignore[arg-type]
            num_main=len(card.heads[0].labels),
            num_sub=len(card.heads[1].labels),
            dropout=card.dropout,
            pooling=card.pooling,
        )
    if card.kind == "joint":
        if [head.name for head in card.heads] != ["main", "sub", "information"]:
            raise ValueError(
                f"a joint classifier has heads 'main', 'sub' and 'information', got {[h.name for h in card.heads]}"
            )
        return JointClassifier(
            encoder,  # type: ignore[arg-type]
            num_main=len(card.heads[0].labels),
            num_sub=len(card.heads[1].labels),
            num_features=len(TEXT_FEATURE_NAMES),
            feature_dim=card.feature_dim,
            dropout=card.dropout,
            pooling=card.pooling,
        )
    return InformationClassifier(
        encoder,  # type: ignore[arg-type]
        num_features=len(TEXT_FEATURE_NAMES),
        feature_dim=card.feature_dim,
        dropout=card.dropout,
        pooling=card.pooling,
    )


def save_classifier(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, card: ClassifierCard, directory: Path
) -> Path:
    from safetensors.torch import save_model

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        encoder = getattr(model, "encoder")  # noqa: B009 - both classifier classes hold one
        encoder.config.save_pretrained(str(staging / "encoder"))
        save_model(model.cpu(), str(staging / WEIGHTS_FILE))
        tokenizer.save_pretrained(str(staging))
        (staging / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read_card(directory: Path) -> ClassifierCard:
    path = directory / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {directory} is not a trained classifier directory")
    return ClassifierCard.model_validate_json(path.read_text(encoding="utf-8"))


def load_classifier(directory: Path) -> tuple[nn.Module, PreTrainedTokenizerBase, ClassifierCard]:
    """Rebuild a saved classifier (CPU, eval mode), its tokenizer and card."""
    from safetensors.torch import load_model

    card = read_card(directory)
    config = AutoConfig.from_pretrained(str(directory / "encoder"))
    encoder = AutoModel.from_config(config, add_pooling_layer=False)
    model = build_classifier(encoder, card)
    load_model(model, str(directory / WEIGHTS_FILE), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    return model.eval(), tokenizer, card
