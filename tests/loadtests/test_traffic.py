"""The load test's traffic model and its judge of answers (no Locust, no server)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from loadtests.traffic import BurstClock, Routing, TrafficProfile, build_request, check_response

ROUTING = Routing(
    thresholds={"precision": 0.8, "recall": 0.3}, default_mode="precision", models=("emotion", "information")
)
HEADERS_429 = {"retry-after": "2"}


def request(mode: str | None = "recall", threshold: float | None = None, scores: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "comments": [{"id": "u1-0-0", "text": "前方高能"}, {"id": "u1-0-1", "text": "这是什么歌？"}]
    }
    if mode:
        body["mode"] = mode
    if threshold is not None:
        body["information_threshold"] = threshold
    if scores:
        body["return_scores"] = True
    return body


def answer(threshold: float = 0.3, mode: str = "recall", scores: bool = False) -> dict[str, Any]:
    first_scores = {"emotion": {"main": {"others": 0.6}}}
    second_scores = {"emotion": {"main": {"social": 0.6}}, "information": {"information": {"information": 0.5}}}
    return {
        "results": [
            {
                "id": "u1-0-0",
                "label": "emotions_positive",
                "subcategory": "joy",
                "labels": ["emotions_positive", "social"],
                "route": ["emotion"],
                "information_probability": None,
                "scores": first_scores if scores else None,
            },
            {
                "id": "u1-0-1",
                "label": "information",
                "subcategory": "domain_knowledge",
                "labels": ["information"],
                "route": ["emotion", "information"],
                "information_probability": 0.5,
                "scores": second_scores if scores else None,
            },
        ],
        "models": {"emotion": "v2", "information": "v1"},
        "mode": mode,
        "information_threshold": threshold,
    }


def judge(body: dict[str, Any], sent: dict[str, Any] | None = None, routing: Routing | None = ROUTING) -> Any:
    return check_response(sent or request(), 200, json.dumps(body).encode(), {}, routing)


def test_a_correct_answer_passes_and_counts_its_comments() -> None:
    outcome = judge(answer())
    assert (outcome.kind, outcome.message, outcome.comments) == ("ok", "", 2)
    assert judge(answer(scores=True), request(scores=True)).kind == "ok"
    assert judge(answer(0.45), request(threshold=0.45)).kind == "ok"
    assert judge(answer(0.8, "precision"), request(mode=None)).kind == "failure"  # 0.5 < 0.8 yet information
    no_info = answer(0.8, "precision")
    no_info["results"][1].update(label="social", subcategory="curiosity", labels=["social"])
    assert judge(no_info, request(mode=None)).kind == "ok"  # no mode: the service default, precision


def broken(change: Any) -> dict[str, Any]:
    body = answer()
    change(body)
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (broken(lambda b: b["results"].reverse()), "results[0]: id 'u1-0-1' where 'u1-0-0' was sent"),
        (broken(lambda b: b["results"].pop()), "1 results for 2 comments"),
        (broken(lambda b: b["results"][0].update(label="spam")), "label 'spam' is not in the schema"),
        (broken(lambda b: b["results"][0].update(subcategory="worry")), "subcategory 'worry' is not under"),
        (broken(lambda b: b["results"][0].update(labels=["social", "emotions_positive"])), "schema order"),
        (broken(lambda b: b["results"][0].update(labels=["social", "social"])), "schema order"),
        (broken(lambda b: b["results"][0].update(route=["emotion", "vllm"])), "route ['emotion', 'vllm']"),
        (broken(lambda b: b["results"][0].update(information_probability=0.2)), "does not match the route"),
        (broken(lambda b: b["results"][1].update(information_probability=1.5)), "is not a probability"),
        (broken(lambda b: b["results"][1].update(information_probability=0.1)), "threshold 0.3"),
        (broken(lambda b: b.update(mode="precision")), "mode 'precision' answered, 'recall' expected"),
        (broken(lambda b: b.update(information_threshold=0.8)), "information_threshold 0.8 answered, 0.3"),
        (broken(lambda b: b.update(models={"emotion": "v2"})), "models"),
        (broken(lambda b: b["results"][0].update(scores={"emotion": {}})), "not asked for"),
        (broken(lambda b: b.pop("results")), "without a results list"),
    ],
)
def test_a_wrong_answer_is_a_failure_that_says_what_is_wrong(body: dict[str, Any], message: str) -> None:
    outcome = judge(body)
    assert outcome.kind == "failure"
    assert message in outcome.message


def test_missing_scores_when_asked_fail() -> None:
    assert "scores for" in judge(answer(), request(scores=True)).message


def test_without_the_routing_the_threshold_is_checked_only_against_the_answer() -> None:
    assert judge(answer(), routing=None).kind == "ok"
    assert judge(broken(lambda b: b["results"][1].update(information_probability=0.1)), routing=None).kind == "failure"


def test_a_429_from_admission_control_is_expected_not_a_failure() -> None:
    overloaded = json.dumps({"error": {"code": "overloaded", "message": "queue full"}}).encode()
    assert check_response(request(), 429, overloaded, HEADERS_429, ROUTING).kind == "overloaded"
    assert "Retry-After" in check_response(request(), 429, overloaded, {}, ROUTING).message
    other = json.dumps({"error": {"code": "rate_limited"}}).encode()
    assert check_response(request(), 429, other, HEADERS_429, ROUTING).kind == "failure"


@pytest.mark.parametrize(("status", "code"), [(500, "internal_error"), (422, "invalid_request"), (503, "not_ready")])
def test_any_other_status_is_a_failure_naming_it(status: int, code: str) -> None:
    body = json.dumps({"error": {"code": code, "message": "..."}}).encode()
    outcome = check_response(request(), status, body, {}, ROUTING)
    assert (outcome.kind, outcome.message) == ("failure", f"HTTP {status} {code}")
    assert check_response(request(), 200, b"<html>", {}, ROUTING).message == "200 with a body that is not JSON"


def test_requests_have_1_to_64_comments_both_modes_and_occasional_overrides() -> None:
    profile = TrafficProfile()
    rng = random.Random(3)
    texts = ["a", "b", "c"]
    calm = [build_request(rng, texts, profile, burst=False, prefix=f"r{i}") for i in range(2000)]
    burst = [build_request(rng, texts, profile, burst=True, prefix=f"b{i}") for i in range(2000)]
    calm_sizes = [len(body["comments"]) for body in calm]
    burst_sizes = [len(body["comments"]) for body in burst]
    assert min(calm_sizes) == 1 and max(calm_sizes) == 8
    assert min(burst_sizes) == 16 and max(burst_sizes) == 64
    modes = [body.get("mode") for body in calm + burst]
    assert 0.35 < modes.count("recall") / len(modes) < 0.45
    assert 0.05 < modes.count(None) / len(modes) < 0.15
    overrides = [body["information_threshold"] for body in calm + burst if "information_threshold" in body]
    assert 0.05 < len(overrides) / len(modes) < 0.15 and all(0.0 <= value <= 1.0 for value in overrides)
    assert [comment["id"] for comment in calm[7]["comments"]] == [f"r7-{i}" for i in range(len(calm[7]["comments"]))]


def test_bursts_come_on_schedule_and_shorten_the_waits() -> None:
    profile = TrafficProfile(burst_every_s=30, burst_length_s=6, calm_wait_s=1.0, burst_wait_s=0.05)
    clock = BurstClock(profile, start_s=1000.0)
    assert [clock.in_burst(1000.0 + t) for t in (0, 23.9, 24, 29.9, 30, 54, 59)] == [
        False,
        False,
        True,
        True,
        False,
        True,
        True,
    ]
    rng = random.Random(0)
    calm = [profile.wait_s(rng, burst=False) for _ in range(4000)]
    fast = [profile.wait_s(rng, burst=True) for _ in range(4000)]
    assert 0.85 < sum(calm) / len(calm) < 1.05 and max(calm) <= 5.0
    assert 0.04 < sum(fast) / len(fast) < 0.055 and max(fast) <= 0.25
    assert not BurstClock(TrafficProfile(burst_length_s=0), 0).in_burst(29.99)


@pytest.mark.parametrize(
    "bad",
    [
        {"min_comments": 0},
        {"min_comments": 9, "max_comments": 8},
        {"calm_wait_s": 0},
        {"burst_length_s": 40},
        {"recall_share": 1.5},
        {"recall_share": 0.6, "default_mode_share": 0.6},
    ],
)
def test_an_impossible_profile_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TrafficProfile(**bad)


def test_the_routing_is_read_from_v1_models() -> None:
    body = {
        "models": [{"name": "emotion"}, {"name": "information"}],
        "routing": {
            "routed_labels": ["others"],
            "thresholds": {"precision": 0.9, "recall": 0.2},
            "default_mode": "recall",
        },
    }
    routing = Routing.from_models_response(copy.deepcopy(body))
    assert routing == Routing({"precision": 0.9, "recall": 0.2}, "recall", ("emotion", "information"))


def test_a_joint_bundle_answers_routed_comments_with_a_one_model_route() -> None:
    body = answer()
    body["models"] = {"emotion": "joint-1"}
    body["results"][1]["route"] = ["emotion"]  # routed, decided by the emotion bundle's own information head
    joint = Routing(thresholds={"precision": 0.8, "recall": 0.3}, default_mode="precision", models=("emotion",))
    assert judge(body, routing=joint).kind == "ok"
    body["results"][1]["information_probability"] = 0.1  # information below the threshold
    assert judge(body, routing=joint).kind == "failure"
