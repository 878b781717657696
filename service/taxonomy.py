"""The label schema (main category -> sub-categories), shared by serving and training.

Bundles carry their own label lists; the service checks them against this schema and derives
sub-category parents from it; training writes it into the bundles it exports.
"""

from __future__ import annotations

SCHEMA: dict[str, tuple[str, ...]] = {
    "information": (
        "domain_knowledge",
        "situated_knowledge",
        "subjective_opinion",
        "video_relevant_remarks",
        "external_sources",
    ),
    "emotions_positive": ("admiration", "encouragement", "gratitude", "joy", "empathy", "moved", "relieved"),
    "emotions_negative": ("criticism", "worry", "shocked", "recollecting"),
    "social": ("social_presence", "self_report", "interaction", "curiosity", "confusion"),
    "others": ("other",),
}

MAIN_LABELS: tuple[str, ...] = tuple(SCHEMA)
SUB_LABELS: tuple[str, ...] = tuple(sub for subs in SCHEMA.values() for sub in subs)
PARENT_OF: dict[str, str] = {sub: main for main, subs in SCHEMA.items() for sub in subs}

# The emotion model (BERT v2) predicts every main category; the information model decides
# `information` for comments the emotion model routes as `others` or `social`.
INFORMATION = "information"
OTHERS = "others"
EMOTIONS_POSITIVE = "emotions_positive"
EMOTIONS_NEGATIVE = "emotions_negative"


def others_yields(labels: set[str]) -> set[str]:
    """``labels`` without ``others`` when a real label is present: ``others`` means "no category"."""
    return labels - {OTHERS} if len(labels) > 1 else labels
