"""Label Studio tasks with the served prediction pre-filled, and the labelling config they go with.

A task (Label Studio's JSON import format)::

    {"data": {"text": "前方高能", "comment_id": "...", "table": "...", "row": 12, "duplicates": 3,
              "served_label": "social", "uncertainty": 0.71},
     "predictions": [{"model_version": "emotion=v2 information=v1", "score": 0.29,
                      "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                  "value": {"choices": ["social"]}},
                                 {"from_name": "subcategory", "to_name": "text", "type": "choices",
                                  "value": {"choices": ["interaction"]}}]}]}

``score`` is the model's confidence, 1 - uncertainty, so sorting by prediction score in Label Studio
puts the least sure first. The config (``label_config_xml``) has one ``Choices`` control per level
(main categories, sub-categories), names as in the results above; ``training.labelstudio`` reads any
``choices`` result of an export back, main-category names as labels and the rest as sub-categories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from training.taxonomy import MAIN_LABELS, PARENT_OF, SCHEMA, others_yields

TEXT_NAME = "text"  # the Text object tag, and the data key ``training.labelstudio`` reads by default
MAIN_CONTROL = "label"
SUB_CONTROL = "subcategory"


@dataclass(frozen=True)
class Pick:
    """One selected comment and what the served models said about it."""

    comment_id: str
    text: str
    table: str
    row: int
    duplicates: int  # rows of the table with the same normalised text
    served_label: str
    labels: tuple[str, ...]  # every main label the service returned
    subcategory: str | None
    uncertainty: float


def predicted_choices(pick: Pick) -> tuple[list[str], list[str]]:
    """``(main categories, sub-categories)`` pre-filled: the served label and the other labels
    returned, in schema order (``others`` only alone); the served sub-category when its parent is in."""
    mains = others_yields({pick.served_label, *pick.labels} & set(MAIN_LABELS)) or {pick.served_label}
    main = [name for name in MAIN_LABELS if name in mains]
    sub = [pick.subcategory] if pick.subcategory and PARENT_OF.get(pick.subcategory) in mains else []
    return main, sub


def _choices(control: str, choices: Sequence[str]) -> dict[str, Any]:
    return {"from_name": control, "to_name": TEXT_NAME, "type": "choices", "value": {"choices": list(choices)}}


def model_version(versions: Mapping[str, str]) -> str:
    return " ".join(f"{name}={version}" for name, version in versions.items())


def task(pick: Pick, *, versions: Mapping[str, str]) -> dict[str, Any]:
    """One Label Studio task for ``pick``, the served prediction pre-filled."""
    main, sub = predicted_choices(pick)
    result = [_choices(MAIN_CONTROL, main)]
    if sub:
        result.append(_choices(SUB_CONTROL, sub))
    return {
        "data": {
            TEXT_NAME: pick.text,
            "comment_id": pick.comment_id,
            "table": pick.table,
            "row": pick.row,
            "duplicates": pick.duplicates,
            "served_label": pick.served_label,
            "uncertainty": round(pick.uncertainty, 4),
        },
        "predictions": [
            {"model_version": model_version(versions), "score": round(1.0 - pick.uncertainty, 4), "result": result}
        ],
    }


def label_config_xml() -> str:
    """The labelling interface: the comment, main categories (several allowed), sub-categories."""

    def choice_lines(names: Sequence[str]) -> list[str]:
        return [f"    <Choice value={quoteattr(name)}/>" for name in names]

    subs = [sub for subs in SCHEMA.values() for sub in subs]
    lines = [
        "<View>",
        f'  <Text name="{TEXT_NAME}" value="${TEXT_NAME}"/>',
        '  <Header value="Main category (several if the comment is several things)"/>',
        f'  <Choices name="{MAIN_CONTROL}" toName="{TEXT_NAME}" choice="multiple" showInline="true" required="true">',
        *choice_lines(MAIN_LABELS),
        "  </Choices>",
        '  <Header value="Sub-category: each one brings its main category, so change it with the main one"/>',
        f'  <Choices name="{SUB_CONTROL}" toName="{TEXT_NAME}" choice="multiple" showInline="true">',
        *choice_lines(subs),
        "  </Choices>",
        "</View>",
    ]
    return "\n".join(lines) + "\n"
