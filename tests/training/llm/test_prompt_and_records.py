"""The prompt carries the schema and the batch; answer items become normalised records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from training.llm.client import ClientSettings
from training.llm.labeller import make_record
from training.llm.parsing import AnswerItem
from training.llm.prompt import SYSTEM_PROMPT, answer_json_schema, build_messages
from training.taxonomy import MAIN_LABELS, SUB_LABELS


def test_prompt_names_every_label_and_numbers_the_comments() -> None:
    for name in (*MAIN_LABELS, *SUB_LABELS):
        assert name in SYSTEM_PROMPT
    system, user = build_messages(["哈哈", 'say "hi"'])
    assert system["role"] == "system" and user["role"] == "user"
    listed = json.loads(user["content"][user["content"].index("[") :])
    assert listed == [{"comment_id": "1", "text": "哈哈"}, {"comment_id": "2", "text": 'say "hi"'}]


def test_prompt_carries_the_annotation_guide_conventions(shared_data: Path) -> None:
    """Every example marker the guide's conventions section names (in parentheses) is in the prompt,
    so labels a user makes with their own LLM follow the same conventions as the teacher labels."""
    guide = (shared_data / "teacher" / "ANNOTATION-GUIDE.md").read_text(encoding="utf-8")
    conventions = guide.split("## Conventions", 1)[1].split("\n## ", 1)[0]
    markers = [
        marker.strip()
        for group in re.findall(r"\(([^)]*)\)", conventions)
        for marker in group.split(",")
        if marker.strip() and not marker.strip().isascii()
    ]
    assert len(markers) >= 10
    missing = [marker for marker in markers if marker.split(" ")[0] not in SYSTEM_PROMPT]
    assert not missing, f"conventions missing from the prompt: {missing}"
    for topic in ("video_relevant_remarks", "subjective_opinion", "external_sources", "self_report", "pure emoticons"):
        assert topic in SYSTEM_PROMPT


def test_answer_schema_restricts_labels_to_the_taxonomy() -> None:
    schema = answer_json_schema(50)
    item = schema["properties"]["comments"]["items"]
    assert item["properties"]["labels"]["items"]["enum"] == list(MAIN_LABELS)
    assert item["properties"]["subcategories"]["items"]["enum"] == list(SUB_LABELS)
    assert schema["properties"]["comments"]["maxItems"] == 50


@pytest.mark.parametrize(
    ("labels", "subcategories", "expected_labels", "expected_subs", "unknown"),
    [
        (("Other",), (), ["others"], ["other"], []),
        (("social", "social", "Emotions-Positive"), ("joy",), ["emotions_positive", "social"], ["joy"], []),
        (("worry",), (), ["emotions_negative"], ["worry"], []),
        (("others", "information"), ("domain_knowledge",), ["information"], ["domain_knowledge"], []),
        (("sarcasm",), (), ["others"], ["other"], ["sarcasm"]),
        (
            ("information/situated_knowledge",),
            ("emotions_positive: joy",),
            ["information", "emotions_positive"],
            ["situated_knowledge", "joy"],
            [],
        ),
    ],
)
def test_records_hold_normalised_and_raw_labels(
    labels: tuple[str, ...],
    subcategories: tuple[str, ...],
    expected_labels: list[str],
    expected_subs: list[str],
    unknown: list[str],
) -> None:
    record = make_record("id1", "text", AnswerItem("3", labels, subcategories, "why"), "m")
    assert record["labels"] == expected_labels and record["subcategories"] == expected_subs
    assert record["unknown_labels"] == unknown
    assert record["raw_labels"] == list(labels) and record["raw_subcategories"] == list(subcategories)
    assert (record["id"], record["source"], record["rationale"], record["model"]) == ("id1", "llm", "why", "m")


def test_client_settings_reject_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match="base_url"):
        ClientSettings(base_url="localhost:8000", model="m")
    with pytest.raises(ValueError, match="response_format"):
        ClientSettings(base_url="http://x/v1", model="m", response_format="yaml")  # type: ignore[arg-type]
