"""A bounded run of loadtests/abuse.py against a real danmaku-serve (tiny bundles, short timeouts) on 127.0.0.1.

The timeouts are shortened (2 s body and header timeouts, 3 s keep-alive) so that the slow and idle attacks end
in seconds; the figures of a run at the defaults against the demo bundles are in docs/serving.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loadtests.conftest import running_server

REPO = Path(__file__).resolve().parents[2]
ABUSE = REPO / "loadtests" / "abuse.py"
GUARD_S = 180


def test_a_bounded_abuse_run_gets_the_expected_statuses_and_healthz_never_stalls(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    with running_server(
        tiny_models_dir,
        tmp_path,
        DANMAKU_BODY_TIMEOUT_S="2",
        DANMAKU_HEADER_TIMEOUT_S="2",
        DANMAKU_KEEP_ALIVE_S="3",
        DANMAKU_MAX_COMMENTS_PER_REQUEST="256",
    ) as server:
        figures_path = tmp_path / "abuse.json"
        result = subprocess.run(
            [
                sys.executable,
                str(ABUSE),
                "--host",
                server.base,
                "--auth-token-file",
                str(server.token_file),
                "--repeat",
                "2",
                "--slow-connections",
                "20",
                "--idle-connections",
                "50",
                "--hold-s",
                "20",
                "--json-out",
                str(figures_path),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=GUARD_S,
        )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(figures_path.read_text(encoding="utf-8"))
    assert figures["unexpected"] == {}, figures["unexpected"]
    assert set(figures["healthz_statuses"]) == {"200"} and figures["healthz_polls"] > 20
    assert figures["healthz_longest_stall_ms"] < 500
    assert not [status for status in figures["statuses"] if status.startswith("5")]
    assert figures["attacks"]["slow-body"]["seconds"] < 10  # closed at the 2 s body timeout, not held


def test_only_this_machine_is_attacked() -> None:
    abuse = pytest.importorskip("loadtests.abuse")
    with pytest.raises(SystemExit, match=r"only http://127\.0\.0\.1"):
        abuse.parse_target("http://example.com:8000", None)
