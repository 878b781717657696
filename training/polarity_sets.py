"""Public human-labelled Chinese emotion sets as emotion-polarity rows (extra training signal, and gold
for the served-label evaluation).

Formats (``PolarityFormat``), each a table of ``{id, content, label}`` with its own emotion names:

- ``smp2020``: SMP2020-EWECT (Weibo), a JSON array: happy → emotions_positive; angry, sad, fear →
  emotions_negative; neutral and surprise have no polarity (left out);
- ``clue_emotion``: CLUEmotionAnalysis2020 (Weibo), JSON lines: like, happiness → emotions_positive;
  sadness, anger, disgust, fear → emotions_negative; surprise left out.

A training row made from them carries one main label and ``label_scope = "polarity"`` in its
``extra``: its other main labels are *absent* (the post was annotated as emotional), its
sub-categories *unknown* (``training.modeling.targets.emotion_targets`` leaves them out of the loss).
Review-sentiment sets (ChnSentiCorp, waimai) are not offered: a review's polarity is an opinion
about a product, which the danmaku taxonomy files under information (``subjective_opinion``), not
an emotion category.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.records import LabelledText
from training.taxonomy import EMOTIONS_NEGATIVE, EMOTIONS_POSITIVE

PolarityFormat = Literal["smp2020", "clue_emotion"]
POLARITY_FORMATS: tuple[str, ...] = get_args(PolarityFormat)
LABEL_SCOPE = "label_scope"
POLARITY_SCOPE = "polarity"

POLARITY: Mapping[str, Mapping[str, str]] = {
    "smp2020": {
        "happy": EMOTIONS_POSITIVE,
        "angry": EMOTIONS_NEGATIVE,
        "sad": EMOTIONS_NEGATIVE,
        "fear": EMOTIONS_NEGATIVE,
    },
    "clue_emotion": {
        "like": EMOTIONS_POSITIVE,
        "happiness": EMOTIONS_POSITIVE,
        "sadness": EMOTIONS_NEGATIVE,
        "anger": EMOTIONS_NEGATIVE,
        "disgust": EMOTIONS_NEGATIVE,
        "fear": EMOTIONS_NEGATIVE,
    },
}


class PolaritySet(BaseModel):
    """One public emotion table used as extra polarity rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The table (SMP2020-EWECT JSON array or CLUEmotion JSON lines).")
    format: PolarityFormat = Field(description="smp2020 | clue_emotion: how its emotion names map to polarity.")
    max_rows: int | None = Field(
        None, ge=1, description="Keep at most this many polarity rows (a seeded random sample; null: all)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        """The command-line form ``FORMAT:PATH[:MAX_ROWS]`` (e.g. ``smp2020:virus_train.txt:3000``)."""
        if not isinstance(value, str):
            return value
        format, _, rest = value.partition(":")
        path, _, max_rows = rest.rpartition(":") if rest.rpartition(":")[2].isdigit() else (rest, "", "")
        if not format or not path:
            raise ValueError(
                f"a polarity set is FORMAT:PATH[:MAX_ROWS] with FORMAT in {POLARITY_FORMATS}, got {value!r}"
            )
        return {"format": format, "path": path, "max_rows": int(max_rows) if max_rows else None}


def polarity_of(label: str, format: PolarityFormat = "smp2020") -> tuple[str, ...]:
    """The danmaku polarity class of an emotion name of ``format`` (empty: the row has no polarity)."""
    target = POLARITY[format].get(label)
    return (target,) if target else ()


def read_items(path: Path, format: PolarityFormat) -> list[dict[str, object]]:
    """The ``{id, content, label}`` items of a table: a JSON array (smp2020) or JSON lines (clue_emotion)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such polarity table")
    text = path.read_text(encoding="utf-8")
    try:
        if format == "smp2020":
            items = json.loads(text)
        else:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a {format} table (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"{path}: a {format} table is a list of {{id, content, label}} objects")
    for number, item in enumerate(items, start=1):
        if not {"content", "label"} <= item.keys():
            raise ValueError(f"{path}: item {number} lacks 'content' or 'label': {sorted(item)}")
    return items


def polarity_rows(spec: PolaritySet, *, seed: int) -> list[LabelledText]:
    """The rows of ``spec`` that have a polarity, as labelled texts (sampled to ``max_rows``)."""
    rows = [
        LabelledText(
            id=f"{spec.format}:{spec.path.stem}:{item.get('id', number)}",
            text=str(item["content"]),
            labels=polarity,
            source=spec.format,
            extra={LABEL_SCOPE: POLARITY_SCOPE},
        )
        for number, item in enumerate(read_items(spec.path, spec.format))
        if (polarity := polarity_of(str(item["label"]), spec.format)) and str(item["content"]).strip()
    ]
    if spec.max_rows is not None and len(rows) > spec.max_rows:
        rows = random.Random(seed).sample(rows, spec.max_rows)
    return rows


def is_polarity_only(record: LabelledText) -> bool:
    """True for a row whose only known fact is its polarity (sub-categories unknown)."""
    return record.extra.get(LABEL_SCOPE) == POLARITY_SCOPE
