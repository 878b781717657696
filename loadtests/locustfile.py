"""Locust load test of POST /classify: real danmaku, live-stream bursts, every answer checked.

    locust -f loadtests/locustfile.py --headless -u 16 -r 4 -t 2m --host http://127.0.0.1:8000 \\
        --csv runs/load --html runs/load.html

Every option (Locust's and this file's) is in loadtests/README.md. How results are reported:

- ``POST /classify``: answers that passed every check of ``loadtests.traffic.check_response``; an answer that
  fails one (wrong order, a label outside the schema, a 5xx, a connection error...) is a Locust *failure* with
  the reason as its message (``--csv`` writes them to ``*_failures.csv``).
- ``POST /classify [429 expected]``: the service refused at admission (queue full) with ``Retry-After``: its own
  row, never a failure. The user then waits the Retry-After (capped by ``--max-retry-after``), like a client should.
- ``GET /v1/models``: once per process, for the thresholds the checks need.

This user reports its requests itself (``events.request.fire``): the HTTP session's own reporting is switched
off, because Locust's session cannot move an answer to another row once it has seen the status.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for `loadtests` and `training`

from loadtests.corpus import DEFAULT_DANMAKU_DIR, Corpus, load_corpus
from loadtests.traffic import BurstClock, Outcome, Routing, TrafficProfile, build_request, check_response

logger = logging.getLogger("loadtests")

CLASSIFY = "/classify"
OVERLOADED_ROW = "/classify [429 expected]"
MODELS = "/v1/models"


class CheckFailed(Exception):
    """An answer that does not match its request; the message is the failure's text in Locust's report."""


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    # On the parser itself, not in an argument group: Locust's extra keywords (is_secret) only work there.
    group = parser
    group.add_argument("--danmaku-dir", default=str(DEFAULT_DANMAKU_DIR), help="real danmaku (shared data)")
    group.add_argument("--texts-file", default="", help="Parquet/CSV/JSONL with a 'text' column, instead")
    group.add_argument("--corpus-size", type=int, default=20_000, help="comments sampled into the pool")
    group.add_argument("--max-text-chars", type=int, default=200, help="longer comments are cut")
    group.add_argument("--min-comments", type=int, default=1, help="fewest comments per request")
    group.add_argument("--max-comments", type=int, default=64, help="most comments per request")
    group.add_argument("--calm-wait", type=float, default=1.0, help="mean seconds between a user's requests")
    group.add_argument("--burst-wait", type=float, default=0.05, help="the same, during a burst")
    group.add_argument("--burst-every", type=float, default=30.0, help="seconds from one burst to the next")
    group.add_argument("--burst-length", type=float, default=6.0, help="seconds a burst lasts (0: none)")
    group.add_argument("--recall-share", type=float, default=0.4, help="share of requests with mode=recall")
    group.add_argument("--default-mode-share", type=float, default=0.1, help="share naming no mode")
    group.add_argument("--threshold-share", type=float, default=0.1, help="share with information_threshold")
    group.add_argument("--scores-share", type=float, default=0.05, help="share with return_scores")
    group.add_argument("--max-retry-after", type=float, default=5.0, help="longest Retry-After honoured (s)")
    group.add_argument("--traffic-seed", type=int, default=0, help="seed of the pool and of every user")
    group.add_argument("--summary-file", default="", help="write comment-level figures here (JSON)")
    group.add_argument(
        "--auth-token", default="", is_secret=True, env_var="LOCUST_AUTH_TOKEN", help="bearer token for /classify"
    )
    group.add_argument("--auth-token-file", default="", help="file holding the bearer token")


@dataclass
class Tally:
    """Comment-level figures Locust does not keep (summed over workers in a distributed run)."""

    comments_classified: int = 0
    requests_ok: int = 0
    requests_overloaded: int = 0
    requests_failed: int = 0
    burst_requests: int = 0

    def add(self, other: dict[str, int]) -> None:
        for key, value in other.items():
            setattr(self, key, getattr(self, key) + int(value))

    def take(self) -> dict[str, int]:
        """The counts so far, reset to zero (a worker reports deltas)."""
        counts = asdict(self)
        for key in counts:
            setattr(self, key, 0)
        return counts


class State:
    """Per process: the pool of comments, the traffic profile, the shared burst clock, what the service said."""

    def __init__(self) -> None:
        self.corpus = Corpus([], "not loaded")
        self.profile = TrafficProfile()
        self.clock = BurstClock(self.profile, time.time())
        self.routing: Routing | None = None
        self.headers: dict[str, str] = {}
        self.seed = 0
        self.max_retry_after_s = 5.0
        self.summary_file = ""
        self.tally = Tally()
        self.started_s = time.time()
        self.stopped_s: float | None = None


STATE = State()
_USER_NUMBERS = itertools.count()


@events.init.add_listener
def _setup(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    STATE.profile = TrafficProfile(
        min_comments=options.min_comments,
        max_comments=options.max_comments,
        calm_wait_s=options.calm_wait,
        burst_wait_s=options.burst_wait,
        burst_every_s=options.burst_every,
        burst_length_s=options.burst_length,
        recall_share=options.recall_share,
        default_mode_share=options.default_mode_share,
        threshold_share=options.threshold_share,
        scores_share=options.scores_share,
    )
    STATE.seed = options.traffic_seed
    STATE.max_retry_after_s = options.max_retry_after
    STATE.summary_file = options.summary_file
    token = options.auth_token
    if options.auth_token_file:
        token = Path(options.auth_token_file).read_text(encoding="utf-8").strip()
    STATE.headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(environment.runner, MasterRunner):
        return  # the master sends nothing
    STATE.corpus = load_corpus(
        danmaku_dir=Path(options.danmaku_dir) if options.danmaku_dir else None,
        texts_file=Path(options.texts_file) if options.texts_file else None,
        size=options.corpus_size,
        max_chars=options.max_text_chars,
        seed=options.traffic_seed,
    )
    # The load above blocked the gevent loop for seconds; its cached clock is that much behind, and Locust's
    # --run-time timer, armed next, would fire that much early (seen: -t 10s stopping after 4.2 s).
    gevent.get_hub().loop.update_now()
    logger.info("traffic: %s; %s", STATE.corpus.description, STATE.profile)


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    STATE.started_s = time.time()
    STATE.stopped_s = None
    STATE.clock = BurstClock(STATE.profile, STATE.started_s)


@events.test_stop.add_listener
def _stop(environment: Environment, **_: Any) -> None:
    STATE.stopped_s = time.time()


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    data["danmaku_tally"] = STATE.tally.take()


@events.worker_report.add_listener
def _collect(client_id: str, data: dict[str, Any]) -> None:
    STATE.tally.add(data.get("danmaku_tally", {}))


@events.quitting.add_listener
def _summary(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    duration = max(1e-9, (STATE.stopped_s or time.time()) - STATE.started_s)
    summary = {
        **asdict(STATE.tally),
        "duration_s": round(duration, 1),
        "comments_per_s": round(STATE.tally.comments_classified / duration, 1),
        "corpus": STATE.corpus.description,
    }
    logger.info("danmaku summary: %s", json.dumps(summary, ensure_ascii=False))
    if STATE.summary_file:
        Path(STATE.summary_file).write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


class DanmakuClient(FastHttpUser):
    """An ingestion client forwarding a live stream's danmaku to the classifier."""

    host = "http://127.0.0.1:8000"  # danmaku-serve's default; --host overrides
    network_timeout = 60.0
    connection_timeout = 10.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.client.request_event = EventHook()  # nobody listens: this class reports (see the module docstring)
        self.number = next(_USER_NUMBERS)
        self.rng = random.Random(f"{STATE.seed}:{self.number}")
        self.sent = 0

    def wait_time(self) -> float:
        return STATE.profile.wait_s(self.rng, STATE.clock.in_burst(time.time()))

    def _fire(self, method: str, name: str, started: float, response: Any, failure: str | None) -> None:
        self.environment.events.request.fire(
            request_type=method,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=len(response.content or b""),
            response=response,
            context={},
            exception=CheckFailed(failure) if failure is not None else None,
        )

    def on_start(self) -> None:
        if STATE.routing is not None:
            return
        started = time.perf_counter()
        response = self.client.get(MODELS, headers=STATE.headers)
        failure = None
        try:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            STATE.routing = Routing.from_models_response(json.loads(response.content))
        except (ValueError, KeyError, TypeError) as exc:
            failure = f"cannot read the routing from {MODELS} ({exc}); thresholds will not be checked"
        self._fire("GET", MODELS, started, response, failure)

    @task
    def classify(self) -> None:
        burst = STATE.clock.in_burst(time.time())
        body = build_request(
            self.rng, STATE.corpus.texts, STATE.profile, burst=burst, prefix=f"u{self.number}-{self.sent}"
        )
        self.sent += 1
        started = time.perf_counter()
        response = self.client.post(CLASSIFY, json=body, headers=STATE.headers)
        headers = {str(key).lower(): str(value) for key, value in (response.headers or {}).items()}
        if not response.status_code:  # connection refused, reset, timed out
            outcome = Outcome("failure", f"no HTTP answer: {getattr(response, 'error', None)!r}")
        else:
            outcome = check_response(body, response.status_code, response.content, headers, STATE.routing)
        name = OVERLOADED_ROW if outcome.kind == "overloaded" else CLASSIFY
        self._fire("POST", name, started, response, outcome.message if outcome.kind == "failure" else None)
        STATE.tally.burst_requests += int(burst)
        if outcome.kind == "ok":
            STATE.tally.requests_ok += 1
            STATE.tally.comments_classified += outcome.comments
        elif outcome.kind == "overloaded":
            STATE.tally.requests_overloaded += 1
            retry_after = float(headers.get("retry-after", "0"))
            gevent.sleep(min(retry_after, STATE.max_retry_after_s))
        else:
            STATE.tally.requests_failed += 1
