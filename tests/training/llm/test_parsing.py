"""Cleaning and tolerant parsing of LLM answers."""

from __future__ import annotations

import json

from training.llm.parsing import AnswerItem, clean_response, json_values, parse_answer
from training.llm.prompt import SYSTEM_PROMPT, user_prompt


def item(comment_id: str, *labels: str, subs: tuple[str, ...] = (), rationale: str = "r") -> dict[str, object]:
    return {"comment_id": comment_id, "labels": list(labels), "subcategories": list(subs), "rationale": rationale}


ANSWER = json.dumps(
    {
        "comments": [
            item("1", "emotions_positive", subs=("joy",)),
            item("2", "social", subs=("curiosity",)),
            item("3", "others", subs=("other",)),
        ]
    }
)


def ids(text: str, **options: object) -> list[str]:
    return [found.comment_id for found in parse_answer(text, **options).items]  # type: ignore[arg-type]


def test_a_clean_answer_parses_completely() -> None:
    parsed = parse_answer(ANSWER, expected_ids={"1", "2", "3"})
    assert parsed.problem is None and not parsed.repaired
    assert parsed.items[0] == AnswerItem("1", ("emotions_positive",), ("joy",), "r")


def test_prose_and_code_fences_around_the_json_are_ignored() -> None:
    text = f"Here you go!\n```json\n{ANSWER}\n```\nAnything else? {{not json}}"
    assert ids(text, expected_ids={"1", "2", "3"}) == ["1", "2", "3"]


def test_an_echoed_prompt_is_cut_even_though_it_contains_json() -> None:
    user = user_prompt(["哈哈", "这是哪里", "abc"])
    text = f"{SYSTEM_PROMPT}\n{user}\n{ANSWER}"
    assert clean_response(text, (SYSTEM_PROMPT, user)) == ANSWER
    assert ids(text, prompt_parts=(SYSTEM_PROMPT, user)) == ["1", "2", "3"]
    # Not cut (paraphrased echo): the prompt's example item (id "0") is found but the input list,
    # which has no labels, is not mistaken for answers.
    assert ids(f"{SYSTEM_PROMPT}\n{user}\n{ANSWER}") == ["0", "1", "2", "3"]


def test_truncated_json_keeps_only_complete_items() -> None:
    cut = ANSWER.index('"labels"', ANSWER.index('"comment_id": "3"'))
    parsed = parse_answer(ANSWER[:cut], truncated=True, expected_ids={"1", "2", "3"})
    assert [found.comment_id for found in parsed.items] == ["1", "2"]
    assert parsed.problem == "truncated; kept 2 complete items"


def test_truncated_inside_a_label_list_does_not_invent_a_label() -> None:
    text = '{"comments": [{"comment_id": "1", "labels": ["social"]}, {"comment_id": "2", "labels": ["emotions_pos'
    parsed = parse_answer(text, truncated=True, expected_ids={"1", "2"})
    assert [(found.comment_id, found.labels) for found in parsed.items] == [("1", ("social",))]


def test_malformed_but_complete_json_is_repaired() -> None:
    text = "{'comments': [{'comment_id': '1', 'labels': ['social'],}, {'comment_id': 2, 'labels': 'others'},]}"
    parsed = parse_answer(text, expected_ids={"1", "2"})
    assert parsed.repaired
    assert [(found.comment_id, found.labels) for found in parsed.items] == [("1", ("social",)), ("2", ("others",))]


def test_one_broken_item_in_the_middle_does_not_lose_the_others() -> None:
    broken = ANSWER.replace('"comment_id": "2", "labels": ["social"]', '"comment_id": "2" "labels": ["social"')
    assert set(ids(broken)) >= {"1", "3"}


def test_garbage_and_empty_answers_have_no_items_and_say_why() -> None:
    assert parse_answer("I cannot do that.").problem == "no answer items in the reply"
    assert parse_answer("").problem == "empty answer"
    assert parse_answer('{"comments": [{"comm', truncated=True).problem == "truncated before the first complete item"


def test_objects_without_labels_are_not_items_and_later_duplicates_win() -> None:
    text = (
        '[{"comment_id": "1", "text": "x"}] {"comment_id": "1", "labels": ["a"]} {"comment_id": "1", "labels": ["b"]}'
    )
    assert [(found.comment_id, found.labels) for found in parse_answer(text).items] == [("1", ("b",))]


def test_bare_list_and_alternative_keys() -> None:
    text = '[{"id": 1, "label": "social", "reason": "q"}]'
    assert parse_answer(text).items == (AnswerItem("1", ("social",), (), "q"),)


def test_json_values_finds_nested_complete_values_inside_a_broken_one() -> None:
    assert list(json_values('{"a": [1, 2], "b": {"c": 3}, "d": [')) == [[1, 2], {"c": 3}]
