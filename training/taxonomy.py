"""Label normalisation for LLM and manual labels, on the schema of ``service/taxonomy.py``."""

from __future__ import annotations

from service.taxonomy import (
    EMOTIONS_NEGATIVE,
    EMOTIONS_POSITIVE,
    INFORMATION,
    MAIN_LABELS,
    OTHERS,
    PARENT_OF,
    SCHEMA,
    SUB_LABELS,
    others_yields,
)

__all__ = [
    "ALIASES",
    "EMOTIONS_NEGATIVE",
    "EMOTIONS_POSITIVE",
    "INFORMATION",
    "MAIN_LABELS",
    "OTHERS",
    "PARENT_OF",
    "SCHEMA",
    "SUB_LABELS",
    "normalise_labels",
]

# Spellings LLMs produce for the schema's names (lower-cased, spaces/hyphens as underscores).
ALIASES: dict[str, str] = {
    "other": "others",
    "emotion_positive": "emotions_positive",
    "positive": "emotions_positive",
    "positive_emotion": "emotions_positive",
    "positive_emotions": "emotions_positive",
    "emotion_negative": "emotions_negative",
    "negative": "emotions_negative",
    "negative_emotion": "emotions_negative",
    "negative_emotions": "emotions_negative",
    "informative": "information",
    "info": "information",
    "socials": "social",
}


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(key, key)


def normalise_labels(
    labels: list[str] | tuple[str, ...], subcategories: list[str] | tuple[str, ...] = ()
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Map raw labels onto the schema: ``(main labels, sub-categories, dropped unknown names)``.

    - aliases and case/spacing variants are folded (``other`` -> ``others``);
    - a sub-category given as a main label moves to the sub-categories;
    - every sub-category brings its parent; duplicates go; order follows the schema;
    - ``others`` (sub-category ``other``) is dropped when a real category is present, and is the
      label of a comment left with no category at all.
    """
    mains: set[str] = set()
    subs: set[str] = set()
    unknown: list[str] = []
    for raw in (*labels, *subcategories):
        name = _canonical(raw)
        if name in SCHEMA:
            mains.add(name)
        elif name in PARENT_OF:
            subs.add(name)
            mains.add(PARENT_OF[name])
        elif raw.strip():
            unknown.append(raw)
    mains = others_yields(mains)
    if OTHERS not in mains:
        subs.discard("other")
    if not mains:
        mains.add(OTHERS)
    if mains == {OTHERS}:
        subs = {"other"}  # the only sub-category of `others`
    ordered_mains = tuple(label for label in MAIN_LABELS if label in mains)
    ordered_subs = tuple(sub for sub in SUB_LABELS if sub in subs)
    return ordered_mains, ordered_subs, tuple(unknown)
