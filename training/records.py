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

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    labels: tuple[str, ...]
    subcategories: tuple[str, ...] = ()
    source: str = "unknown"
    extra: dict[str, object] = field(default_factory=dict, compare=False)
