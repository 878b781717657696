"""Hostile-but-realistic clients against a running service on this machine, while /healthz is polled (issue 9).

    python loadtests/abuse.py --host http://127.0.0.1:8000 [--auth-token-file token] [--json-out runs/abuse.json]

Every attack is bounded in count and time and goes to 127.0.0.1 only (any other host is refused). Raw sockets,
standard library only. The attacks:

- ``amplification``: ``{"comments": [{}] * 200000}`` (600 KB), repeated: 413 before any item is validated;
- ``invalid-items``: the most comments allowed, every one invalid: a 422 with at most 20 details;
- ``invalid-json``: invalid UTF-8, 200,000-level nesting, a 5,001-digit number, a raw control character: 400;
- ``content-type``: a JSON body sent as text/plain and as a form: 415;
- ``double-authorization``: two Authorization headers, the right token in one: 401 when a token is set;
- ``many-headers`` / ``huge-header``: 10,000 headers; one 4 MB header value: 431 and closed;
- ``slow-body``: connections that send their headers and 10 bytes of the body, then nothing: 408 and closed;
- ``slow-headers``: connections that send half their headers, then nothing: 408 and closed;
- ``idle-connections``: connections that send nothing, held until the server closes them (or ``--hold-s``);
- ``valid``: ordinary requests in between, which must still get 200.

A thread polls GET /healthz every ``--poll-interval`` seconds throughout, each on a new connection. The script
prints the status counts per attack, the /healthz statuses and the longest /healthz answer time ("stall"). Exit
status: 0; 1 when any answer (attack or /healthz) was a 5xx or /healthz failed; 3 when the longest stall is over
``--max-stall-ms``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
SOCKET_TIMEOUT_S = 30.0


@dataclass
class Target:
    host: str
    port: int
    token: str | None

    def auth_header(self) -> str:
        return f"Authorization: Bearer {self.token}\r\n" if self.token else ""


@dataclass
class Outcome:
    """Statuses seen by one attack ('closed': the server closed without answering; 'error': connect/read failed)."""

    name: str
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    expected: str = ""


def parse_target(url: str, token: str | None) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS:
        raise SystemExit(f"abuse.py attacks only http://127.0.0.1 (this machine), got {url!r}")
    return Target("127.0.0.1" if parts.hostname == "localhost" else parts.hostname, parts.port or 80, token)


def exchange(target: Target, data: bytes, *, hold_s: float = SOCKET_TIMEOUT_S) -> str:
    """Send ``data``, read until the server closes (or ``hold_s``); the answer's status, or 'closed' (closed without
    an answer), 'reset' (reset while sending) or 'error' (could not connect, or not HTTP)."""
    try:
        sock = socket.create_connection((target.host, target.port), timeout=SOCKET_TIMEOUT_S)
    except OSError:
        return "error"
    with sock:
        sock.settimeout(hold_s)
        with contextlib.suppress(OSError):  # the server may answer and close while a huge request is being sent
            sock.sendall(data)
        answer = b""
        deadline = time.monotonic() + hold_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:  # reset: the server closed while our request was still arriving
                return "reset" if not answer else _status(answer)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and b"connection: close" not in answer.lower():
                break  # a keep-alive answer: its head is enough
    return _status(answer) if answer else "closed"


def _status(answer: bytes) -> str:
    if answer.startswith(b"HTTP/1.1 ") and len(answer) >= 12:
        return answer[9:12].decode("ascii", errors="replace")
    return "error"


def post(target: Target, body: bytes, *, content_type: str = "application/json", extra: str = "") -> bytes:
    return (
        f"POST /classify HTTP/1.1\r\nHost: {target.host}\r\nConnection: close\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{target.auth_header()}{extra}\r\n"
    ).encode() + body


class HealthPoller(threading.Thread):
    """GET /healthz every ``interval`` seconds on a new connection; records each answer's time and status."""

    def __init__(self, target: Target, interval: float) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.interval = interval
        self.stop = threading.Event()
        self.statuses: Counter[str] = Counter()
        self.longest_s = 0.0
        self.polls = 0
        self.phase = "start"
        self.longest_by_phase: dict[str, float] = {}

    def run(self) -> None:
        request = f"GET /healthz HTTP/1.1\r\nHost: {self.target.host}\r\nConnection: close\r\n\r\n".encode()
        while not self.stop.is_set():
            started = time.perf_counter()
            status = exchange(self.target, request, hold_s=10.0)
            elapsed = time.perf_counter() - started
            self.statuses[status] += 1
            self.polls += 1
            self.longest_s = max(self.longest_s, elapsed)
            self.longest_by_phase[self.phase] = max(self.longest_by_phase.get(self.phase, 0.0), elapsed)
            self.stop.wait(max(0.0, self.interval - elapsed))


def run_attack(name: str, expected: str, requests: list[Callable[[], str]], *, workers: int) -> Outcome:
    outcome = Outcome(name, expected=expected)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(requests)))) as pool:
        for status in pool.map(lambda request: request(), requests):
            outcome.statuses[status] += 1
    outcome.seconds = time.perf_counter() - started
    return outcome


def attacks(target: Target, args: argparse.Namespace) -> list[tuple[str, str, list[Callable[[], str]], int]]:
    """(name, expected statuses, requests, concurrency) of every attack, in order."""

    def send(data: bytes, hold_s: float = SOCKET_TIMEOUT_S) -> Callable[[], str]:
        return lambda: exchange(target, data, hold_s=hold_s)

    valid = post(target, json.dumps({"comments": [{"text": "前方高能"}, {"text": "这首曲子的作者是谁？"}]}).encode())
    amplification = post(target, json.dumps({"comments": [{}] * 200_000}).encode())
    invalid_items = post(target, json.dumps({"comments": [{"txt": 1}] * args.max_comments}).encode())
    invalid_json = [
        post(target, b'{"comments": [{"text": "\xff"}]}'),
        post(target, b"[" * 200_000 + b"]" * 200_000),
        post(target, b'{"comments": [{"text": "x"}], "information_threshold": ' + b"1" * 5001 + b"}"),
        post(target, b'{"comments": [{"text": "a\x01b"}]}'),
    ]
    as_text = post(target, b'{"comments": [{"text": "ok"}]}', content_type="text/plain")
    as_form = post(target, b"comments=ok", content_type="application/x-www-form-urlencoded")
    token = target.token or "none"
    double_auth = (
        f"POST /classify HTTP/1.1\r\nHost: {target.host}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nAuthorization: Bearer wrong\r\nContent-Length: 30\r\n\r\n"
        '{"comments": [{"text": "ok"}]}'
    ).encode()
    many_headers = post(target, b"{}", extra="".join(f"X-H{n}: {n}\r\n" for n in range(10_000)))
    huge_header = post(target, b"{}", extra="X-Big: " + "a" * (4 << 20) + "\r\n")
    slow_body = (
        f"POST /classify HTTP/1.1\r\nHost: {target.host}\r\nContent-Type: application/json\r\n"
        f"{target.auth_header()}Content-Length: 1000\r\n\r\n" + '{"comments'
    ).encode()
    slow_headers = f"POST /classify HTTP/1.1\r\nHost: {target.host}\r\nX-Slow: ".encode()
    r = args.repeat
    return [
        ("valid", "200", [send(valid)] * r, 4),
        ("amplification", "413", [send(amplification)] * r, 2),
        ("invalid-items", "422", [send(invalid_items)] * r, 2),
        ("invalid-json", "400", [send(body) for body in invalid_json] * r, 2),
        ("content-type", "415", [send(as_text), send(as_form)] * r, 2),
        ("double-authorization", "401" if target.token else "200", [send(double_auth)] * r, 2),
        ("many-headers", "431", [send(many_headers)] * r, 2),
        ("huge-header", "431", [send(huge_header)] * r, 2),
        ("slow-body", "408", [send(slow_body, args.hold_s)] * args.slow_connections, args.slow_connections),
        ("slow-headers", "408", [send(slow_headers, args.hold_s)] * args.slow_connections, args.slow_connections),
        ("idle-connections", "closed", [send(b"", args.hold_s)] * args.idle_connections, args.idle_connections),
        ("valid-after", "200", [send(valid)] * r, 4),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:8000", help="the service; only 127.0.0.1 is accepted")
    parser.add_argument("--auth-token-file", type=Path, help="file with the service's bearer token, if it has one")
    parser.add_argument("--repeat", type=int, default=5, help="requests per one-shot attack (5)")
    parser.add_argument("--slow-connections", type=int, default=50, help="slow uploads and slow headers, each (50)")
    parser.add_argument("--idle-connections", type=int, default=200, help="connections that send nothing (200)")
    parser.add_argument("--hold-s", type=float, default=90.0, help="longest a slow/idle connection is held (90)")
    parser.add_argument("--max-comments", type=int, default=256, help="DANMAKU_MAX_COMMENTS_PER_REQUEST (256)")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between /healthz polls (0.05)")
    parser.add_argument("--max-stall-ms", type=float, default=500.0, help="exit 3 above this /healthz stall (500)")
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    for option in ("repeat", "slow_connections", "idle_connections"):
        if not 1 <= getattr(args, option) <= 1000:
            parser.error(f"--{option.replace('_', '-')} must be in 1..1000")
    token = args.auth_token_file.read_text(encoding="utf-8").strip() if args.auth_token_file else None
    target = parse_target(args.host, token)

    poller = HealthPoller(target, args.poll_interval)
    poller.start()
    started = time.perf_counter()
    outcomes = []
    try:
        for name, expected, requests, workers in attacks(target, args):
            poller.phase = name
            outcome = run_attack(name, expected, requests, workers=workers)
            outcomes.append(outcome)
            statuses = ", ".join(f"{status} x{count}" for status, count in sorted(outcome.statuses.items()))
            stall = poller.longest_by_phase.get(name, 0.0) * 1000
            print(
                f"{name:22} {statuses:32} expected {expected:7} {outcome.seconds:6.1f} s"
                f"   /healthz max {stall:6.1f} ms",
                flush=True,
            )
    finally:
        poller.stop.set()
        poller.join(15)
    total = Counter[str]()
    for outcome in outcomes:
        total.update(outcome.statuses)
    unexpected = {
        outcome.name: dict(outcome.statuses) for outcome in outcomes if set(outcome.statuses) != {outcome.expected}
    }
    figures: dict[str, Any] = {
        "host": args.host,
        "seconds": round(time.perf_counter() - started, 1),
        "healthz_polls": poller.polls,
        "healthz_statuses": dict(poller.statuses),
        "healthz_longest_stall_ms": round(poller.longest_s * 1000, 1),
        "healthz_longest_ms_by_attack": {name: round(s * 1000, 1) for name, s in poller.longest_by_phase.items()},
        "statuses": dict(total),
        "attacks": {
            o.name: {"statuses": dict(o.statuses), "expected": o.expected, "seconds": round(o.seconds, 2)}
            for o in outcomes
        },
        "unexpected": unexpected,
    }
    print(
        f"/healthz: {poller.polls} polls, statuses {dict(poller.statuses)}, longest stall "
        f"{figures['healthz_longest_stall_ms']} ms; all attack statuses {dict(sorted(total.items()))}"
    )
    if unexpected:
        print(f"unexpected statuses: {unexpected}")
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    server_errors = [s for s in (*total, *poller.statuses) if s.startswith("5") or s == "error"]
    if server_errors or set(poller.statuses) != {"200"}:
        return 1
    if figures["healthz_longest_stall_ms"] > args.max_stall_ms:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
