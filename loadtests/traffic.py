"""What the load test sends and how it judges the answers; pure functions, no Locust (tested on their own).

- ``BurstClock`` and ``TrafficProfile.wait_s``: live-stream arrivals. Calm stretches with a request every
  ``calm_wait_s`` on average per user (exponential gaps) and, every ``burst_every_s``, a burst of
  ``burst_length_s`` (a highlight on stream) where every user fires every ``burst_wait_s`` with bigger requests.
  The clock is shared by the users of a process, so they burst together.
- ``build_request``: 1-64 comments (calm: up to an eighth of the maximum; burst: a quarter of it and up), both
  modes, sometimes no mode (the service default), sometimes an ``information_threshold`` or ``return_scores``.
- ``check_response``: one result per comment, in order, ids echoed, labels in the schema, sub-category under its
  label, the route and the information probability consistent with the threshold the service says it applied.
  A 429 with ``Retry-After`` and the ``overloaded`` code is *expected* (admission control doing its job).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from training.taxonomy import MAIN_LABELS, PARENT_OF

EXPECTED_OVERLOAD = "overloaded"


@dataclass(frozen=True)
class TrafficProfile:
    min_comments: int = 1
    max_comments: int = 64
    calm_wait_s: float = 1.0
    burst_wait_s: float = 0.05
    burst_every_s: float = 30.0
    burst_length_s: float = 6.0
    recall_share: float = 0.4
    default_mode_share: float = 0.1
    threshold_share: float = 0.1
    scores_share: float = 0.05

    def __post_init__(self) -> None:
        if not 1 <= self.min_comments <= self.max_comments:
            raise ValueError(f"need 1 <= min comments <= max comments, got {self.min_comments}, {self.max_comments}")
        if self.calm_wait_s <= 0 or self.burst_wait_s <= 0:
            raise ValueError("the mean waits must be positive")
        if not 0 <= self.burst_length_s <= self.burst_every_s or self.burst_every_s <= 0:
            raise ValueError("need 0 <= burst length <= burst period, and a positive period")
        for name in ("recall_share", "default_mode_share", "threshold_share", "scores_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.recall_share + self.default_mode_share > 1.0:
            raise ValueError("recall_share + default_mode_share must not exceed 1")

    def wait_s(self, rng: random.Random, burst: bool) -> float:
        """Seconds until a user's next request: exponential gaps (a Poisson stream), capped at 5x the mean."""
        mean = self.burst_wait_s if burst else self.calm_wait_s
        return min(rng.expovariate(1.0 / mean), 5.0 * mean)

    def comments_per_request(self, rng: random.Random, burst: bool) -> int:
        """Log-uniform in the calm or the burst range (small requests are the common case)."""
        if burst:
            low, high = max(self.min_comments, self.max_comments // 4), self.max_comments
        else:
            low, high = self.min_comments, max(self.min_comments, self.max_comments // 8)
        count = int(math.exp(rng.uniform(math.log(low), math.log(high + 1))))
        return min(high, max(low, count))


class BurstClock:
    """Calm for ``every - length`` seconds, then a burst of ``length`` seconds; starts calm."""

    def __init__(self, profile: TrafficProfile, start_s: float) -> None:
        self.profile = profile
        self.start_s = start_s

    def in_burst(self, now_s: float) -> bool:
        if self.profile.burst_length_s == 0:
            return False
        phase = (now_s - self.start_s) % self.profile.burst_every_s
        return phase >= self.profile.burst_every_s - self.profile.burst_length_s


def build_request(
    rng: random.Random, texts: Sequence[str], profile: TrafficProfile, *, burst: bool, prefix: str
) -> dict[str, Any]:
    """A POST /classify body; comment ids are ``<prefix>-<position>`` so an answer's order can be checked."""
    count = profile.comments_per_request(rng, burst)
    body: dict[str, Any] = {
        "comments": [{"id": f"{prefix}-{position}", "text": rng.choice(texts)} for position in range(count)]
    }
    draw = rng.random()
    if draw < profile.recall_share:
        body["mode"] = "recall"
    elif draw < profile.recall_share + profile.default_mode_share:
        pass  # the service's default mode
    else:
        body["mode"] = "precision"
    if rng.random() < profile.threshold_share:
        body["information_threshold"] = round(rng.uniform(0.0, 1.0), 2)
    if rng.random() < profile.scores_share:
        body["return_scores"] = True
    return body


@dataclass(frozen=True)
class Routing:
    """What the service says about its routing (GET /v1/models): needed to check the threshold it applied."""

    thresholds: Mapping[str, float]
    default_mode: str
    models: tuple[str, ...]

    @classmethod
    def from_models_response(cls, body: Mapping[str, Any]) -> Routing:
        routing = body["routing"]
        return cls(
            thresholds=dict(routing["thresholds"]),
            default_mode=routing["default_mode"],
            models=tuple(model["name"] for model in body["models"]),
        )


@dataclass(frozen=True)
class Outcome:
    kind: Literal["ok", "overloaded", "failure"]
    message: str = ""
    comments: int = 0  # comments classified (ok only)


def _failure(message: str) -> Outcome:
    return Outcome("failure", message)


def check_response(
    request: Mapping[str, Any],
    status: int,
    body: bytes | None,
    headers: Mapping[str, str],
    routing: Routing | None,
) -> Outcome:
    """Judge one POST /classify answer against the request that caused it (``headers``: names in lower case)."""
    if status == 429:
        retry_after = headers.get("retry-after")  # header names in lower case
        code = _error_code(body)
        if code != EXPECTED_OVERLOAD:
            return _failure(f"429 with error code {code!r}, expected {EXPECTED_OVERLOAD!r}")
        if retry_after is None or not retry_after.strip().isdigit():
            return _failure(f"429 without a Retry-After in seconds (got {retry_after!r})")
        return Outcome("overloaded")
    if status != 200:
        code = _error_code(body)
        return _failure(f"HTTP {status}" + (f" {code}" if code else "") if status else "no HTTP answer")
    try:
        answer = json.loads(body or b"")
    except ValueError:
        return _failure("200 with a body that is not JSON")
    if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        return _failure("200 without a results list")
    comments = request["comments"]
    results = answer["results"]
    if len(results) != len(comments):
        return _failure(f"{len(results)} results for {len(comments)} comments")
    mode = request.get("mode") or (routing.default_mode if routing else None)
    if mode is not None and answer.get("mode") != mode:
        return _failure(f"mode {answer.get('mode')!r} answered, {mode!r} expected")
    threshold = answer.get("information_threshold")
    if "information_threshold" in request:
        expected_threshold: float | None = request["information_threshold"]
    else:
        expected_threshold = routing.thresholds.get(mode) if routing and mode else None
    if not isinstance(threshold, (int, float)) or (expected_threshold is not None and threshold != expected_threshold):
        return _failure(f"information_threshold {threshold!r} answered, {expected_threshold!r} expected")
    models = answer.get("models")
    if not isinstance(models, dict) or (routing is not None and set(models) != set(routing.models)):
        return _failure(f"models {models!r} answered")
    for position, (comment, result) in enumerate(zip(comments, results, strict=True)):
        problem = _check_result(comment, result, float(threshold), set(models), bool(request.get("return_scores")))
        if problem:
            return _failure(f"results[{position}]: {problem}")
    return Outcome("ok", comments=len(comments))


def _check_result(
    comment: Mapping[str, Any], result: Any, threshold: float, models: set[str], want_scores: bool
) -> str | None:
    if not isinstance(result, dict):
        return "not an object"
    if result.get("id") != comment.get("id"):
        return f"id {result.get('id')!r} where {comment.get('id')!r} was sent (order or echo broken)"
    label = result.get("label")
    if label not in MAIN_LABELS:
        return f"label {label!r} is not in the schema"
    subcategory = result.get("subcategory")
    if subcategory is not None and PARENT_OF.get(subcategory) != label:
        return f"subcategory {subcategory!r} is not under {label!r}"
    labels = result.get("labels")
    if not isinstance(labels, list) or [name for name in MAIN_LABELS if name in labels] != labels:
        return f"labels {labels!r} are not distinct schema labels in schema order"
    route = result.get("route")
    if not isinstance(route, list) or not 1 <= len(route) <= 2 or not set(route) <= models:
        return f"route {route!r} is not one or two of the models {sorted(models)}"
    probability = result.get("information_probability")
    # One model answering: a joint emotion bundle whose own information head decides routed comments, so
    # the route is always that one bundle and the probability alone says whether the comment was routed.
    if len(models) > 1 and (probability is None) != (len(route) == 1):
        return f"information_probability {probability!r} does not match the route {route}"
    if probability is not None:
        if not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
            return f"information_probability {probability!r} is not a probability"
        if (label == "information") != (probability >= threshold):
            return f"label {label!r} with information probability {probability} and threshold {threshold}"
    scores = result.get("scores")
    if want_scores and (not isinstance(scores, dict) or set(scores) != set(route)):
        return f"scores for {sorted(scores) if isinstance(scores, dict) else scores!r}, route was {route}"
    if not want_scores and scores is not None:
        return "scores returned although not asked for"
    return None


def _error_code(body: bytes | None) -> str | None:
    try:
        code = json.loads(body or b"")["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None
