"""Typed records passed between pipeline stages.

The *labelled-text table* is the hand-over format between stages (LLM labels, teacher labels,
manual labels, curated sets): JSONL or Parquet with one row per unique text and the columns

    id             str        stable id of the text
    text           str        the comment as written (preprocessing is applied by each model)
    labels         list[str]  main categories (schema of ``training/taxonomy.py``)
    subcategories  list[str]  sub-categories
    source         str        where the labels came from: llm | teacher | manual | ...

plus optional columns a stage adds (``rationale``, ``provenance``, ``split``...).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    labels: tuple[str, ...]
    subcategories: tuple[str, ...] = ()
    source: str = "unknown"
    extra: dict[str, object] = field(default_factory=dict, compare=False)


def text_id(text: str) -> str:
    """The stable id of a text: 16 hex characters of BLAKE2b over its UTF-8 bytes.

    64 bits: the chance of any collision among 10 million distinct texts is about 3e-6.
    """
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


# The comments table written by ``ingest``: one row per comment, the nine danmaku fields plus
# where the comment came from. Fields a source format does not carry are null.
COMMENT_COLUMNS: tuple[str, ...] = (
    "video_id",  # str: XML chatid, video-hourly video_id, or the video column of a text table
    "onset_s",  # float: seconds into the video
    "mode",  # int: 1-3 scrolling, 4 bottom, 5 top, 6 reverse, 7 positioned, 8 code
    "font_size",  # int
    "colour",  # int: 0xRRGGBB as an integer
    "sent_at",  # int: unix seconds
    "pool",  # int: 0 normal, 1 subtitle, 2 special
    "sender",  # str: hash of the sender's user id
    "row_id",  # int: the comment's id on the platform
    "text",  # str: the comment, surrounding whitespace stripped
    "text_id",  # str: text_id(text)
    "chat_id",  # str: XML chatid / video-hourly chat_id
    "maxlimit",  # int: the pool size of the XML / video-hourly record
    "collect_ymdh",  # str: video-hourly collection hour (YYYYMMDDHH)
    "source_file",  # str: the input file
    "line",  # int: line of the input file the comment starts on
)

# The unique-texts table written by ``ingest``: one row per distinct text.
UNIQUE_TEXT_COLUMNS: tuple[str, ...] = (
    "id",  # str: text_id(text), the id every later stage uses
    "text",  # str
    "count",  # int: comments with this text
    "videos",  # int: distinct videos it appears in
)

# Columns the ``llm-label`` stage adds to the labelled-text table (source = "llm").
LLM_LABEL_EXTRA_COLUMNS: tuple[str, ...] = (
    "raw_labels",  # list[str]: main labels exactly as the LLM wrote them
    "raw_subcategories",  # list[str]: sub-categories exactly as the LLM wrote them
    "unknown_labels",  # list[str]: raw names normalisation could not map (dropped)
    "rationale",  # str: the LLM's short reason
    "model",  # str: the model name the endpoint reported
)
