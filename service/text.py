"""Text preprocessing and text features: the part of the bundle contract that touches raw text.

Training and serving both call these functions with the settings recorded in a bundle's
``bundle.json`` (``preprocessing``), so a comment is normalised the same way on both sides.
Pure standard library: the serving image imports this without torch.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_WHITESPACE = re.compile(r"\s+")
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+\.(?:com|cn|net|org|tv|io)\b", re.IGNORECASE)
_LATIN_OR_DIGIT_WORD = re.compile(r"[A-Za-z0-9]+")
_QUESTION_MARKS = frozenset("?？")


class Preprocessing(BaseModel):
    """How raw text is normalised before tokenisation (stored in ``bundle.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unicode_form: Literal["NFKC", "NFC", "none"] = Field(
        "NFKC", description="Unicode normalisation; NFKC folds full-width letters, digits and punctuation."
    )
    max_char_run: int = Field(
        3,
        ge=0,
        description="Runs of one character longer than this are cut to this length "
        "(哈哈哈哈哈哈 -> 哈哈哈, 2333333 -> 2333 keeps the 2 and three 3s); 0 disables.",
    )
    collapse_whitespace: bool = Field(True, description="Strip and collapse runs of whitespace to one space.")
    lowercase: bool = Field(False, description="Lower-case Latin letters (for uncased encoders).")


def _collapse_runs(text: str, max_run: int) -> str:
    if max_run <= 0 or len(text) <= max_run:
        return text
    out: list[str] = []
    previous = ""
    run = 0
    for char in text:
        run = run + 1 if char == previous else 1
        previous = char
        if run <= max_run:
            out.append(char)
    return "".join(out)


def preprocess(text: str, config: Preprocessing) -> str:
    """Normalise one comment exactly as the bundle's training data was normalised."""
    if config.unicode_form != "none":
        text = unicodedata.normalize(config.unicode_form, text)
    if config.collapse_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    if config.lowercase:
        text = text.lower()
    return _collapse_runs(text, config.max_char_run)


# Order matters: it is the column order of the ``features`` input of an information bundle.
TEXT_FEATURE_NAMES: tuple[str, ...] = (
    "log_word_count",
    "char_count",
    "question_marks",
    "has_url",
    "digit_count",
)


def _word_count(text: str) -> int:
    """Words in mixed Chinese/Latin text: every CJK (or other non-Latin letter) char is one word,
    every run of Latin letters/digits is one word. Danmaku are too short for a segmenter to pay off."""
    latin_words = _LATIN_OR_DIGIT_WORD.findall(text)
    rest = _LATIN_OR_DIGIT_WORD.sub(" ", text)
    other_letters = sum(1 for char in rest if char.isalpha())
    return len(latin_words) + other_letters


def text_features(text: str) -> list[float]:
    """The five hand-written features of the information model, in ``TEXT_FEATURE_NAMES`` order.

    Raw values: the model standardises them itself (its mean/std are baked into the ONNX graph),
    so serving only has to compute these numbers on the preprocessed text.
    """
    return [
        math.log1p(_word_count(text)),
        float(len(text)),
        float(sum(1 for char in text if char in _QUESTION_MARKS)),
        1.0 if _URL.search(text) else 0.0,
        float(sum(1 for char in text if char.isdigit())),
    ]
