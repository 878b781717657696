"""A bounded headless Locust run (loadtests/locustfile.py) against a real uvicorn on 127.0.0.1.

Short on purpose (15 s of load): it proves the locustfile, its checks and its reporting work end to end, with the
bearer token on and a queue small enough that bursts meet admission control. The real figures come from the
longer runs in loadtests/README.md.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.serving import metric_samples
from tests.loadtests.conftest import Server

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
USERS = 8
GUARD_S = 180


def locust(host: str, prefix: Path, *options: str, run_time: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(USERS),
        "--spawn-rate",
        str(USERS),
        "--run-time",
        run_time,
        "--host",
        host,
        "--csv",
        str(prefix),
        "--html",
        str(prefix) + ".html",
        "--only-summary",
        "--summary-file",
        str(prefix) + "_summary.json",
        *options,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=GUARD_S)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_bounded_headless_run_has_requests_and_no_failures_but_expected_429s(server: Server, tmp_path: Path) -> None:
    base, token = server.base, server.token_file
    prefix = tmp_path / "run"
    result = locust(
        base,
        prefix,
        "--auth-token-file",
        str(token),
        "--burst-every",
        "5",
        "--burst-length",
        "2",
        "--corpus-size",
        "5000",
        run_time="15s",
    )
    assert result.returncode == 0, result.stderr[-4000:]

    stats = {(row["Type"], row["Name"]): row for row in read_rows(Path(f"{prefix}_stats.csv"))}
    classify = stats[("POST", "/classify")]
    assert int(classify["Request Count"]) > 0
    assert int(stats[("", "Aggregated")]["Failure Count"]) == 0
    assert read_rows(Path(f"{prefix}_failures.csv")) == []
    overloaded_row = stats.get(("POST", "/classify [429 expected]"))
    if overloaded_row is not None:
        assert int(overloaded_row["Failure Count"]) == 0

    summary: dict[str, Any] = json.loads(Path(f"{prefix}_summary.json").read_text(encoding="utf-8"))
    assert summary["requests_failed"] == 0
    assert summary["requests_ok"] >= int(classify["Request Count"])  # the CSV is rewritten every second: it lags
    assert summary["comments_classified"] >= summary["requests_ok"] > 0
    assert summary["burst_requests"] > 0

    # The service saw what Locust says; requests cut short when Locust stopped its users may be missing on our side.
    samples = metric_samples(httpx.get(base + "/metrics", timeout=10).text)

    def served(status: str) -> float:
        return samples.get(("danmaku_requests_total", (("route", "/classify"), ("status", status))), 0.0)

    assert summary["requests_ok"] <= served("200") <= summary["requests_ok"] + USERS
    assert summary["requests_overloaded"] <= served("429") <= summary["requests_overloaded"] + USERS
    assert served("401") == 0  # the token was sent
    assert not [key for key in samples if key[0] == "danmaku_requests_total" and dict(key[1])["status"].startswith("5")]
    print(f"\nheadless run: {json.dumps(summary, ensure_ascii=False)}")
    html = Path(f"{prefix}.html").read_text(encoding="utf-8")
    assert "/classify" in html


class WrongOrderService(BaseHTTPRequestHandler):
    """Answers /classify with the results reversed: every request of two or more comments is wrong."""

    def do_GET(self) -> None:
        self._send(
            {
                "models": [{"name": "emotion"}],
                "routing": {"thresholds": {"precision": 0.8, "recall": 0.3}, "default_mode": "precision"},
            }
        )

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        results = [
            {
                "id": c["id"],
                "label": "others",
                "subcategory": "other",
                "labels": ["others"],
                "route": ["emotion"],
                "information_probability": None,
                "scores": None,
            }
            for c in reversed(request["comments"])
        ]
        mode = request.get("mode", "precision")
        threshold = request.get("information_threshold", {"precision": 0.8, "recall": 0.3}[mode])
        self._send({"results": results, "models": {"emotion": "x"}, "mode": mode, "information_threshold": threshold})

    def _send(self, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wrong_answers_are_counted_as_failures_with_their_reason(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), WrongOrderService)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        prefix = tmp_path / "bad"
        host = f"http://127.0.0.1:{httpd.server_address[1]}"
        result = locust(host, prefix, "--danmaku-dir", "", "--corpus-size", "200", "--calm-wait", "0.1", run_time="4s")
    finally:
        httpd.shutdown()
    assert result.returncode == 1, result.stderr[-4000:]  # Locust's exit code when a request failed
    failures = read_rows(Path(f"{prefix}_failures.csv"))
    assert failures and all(row["Name"] == "/classify" for row in failures)
    assert any("(order or echo broken)" in row["Error"] for row in failures)
    summary = json.loads(Path(f"{prefix}_summary.json").read_text(encoding="utf-8"))
    assert summary["requests_failed"] > 0 and "generated comments" in summary["corpus"]
