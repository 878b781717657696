"""The Grafana dashboard, the HPA adapter's queries and the alert rules against a real Prometheus.

A real danmaku-serve (uvicorn, the tiny test bundles, /metrics on its own port as in Kubernetes) gets a few seconds of
load on 127.0.0.1 (normal requests, bursts past a small queue for 429s, invalid requests for 422s) while a real
Prometheus (Debian's `prometheus` package) scrapes it every second with the alert rules loaded. Then every panel query
of deploy/grafana/danmaku.json must return data, the adapter's series and metrics queries must return the per-pod
values the HPA reads, and every alert rule must evaluate without error.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.taxonomy import MAIN_LABELS
from tests.deploy.conftest import REPO
from tests.fixtures.serving import free_port

DASHBOARD = REPO / "deploy" / "grafana" / "danmaku.json"
RULES = REPO / "deploy" / "prometheus" / "danmaku.rules.yaml"
ADAPTER_RULES = REPO / "deploy" / "k8s" / "monitoring" / "prometheus-adapter" / "adapter-rules.yaml"
JOB = "danmaku-classifier"
# What the Prometheus Operator attaches to a scraped pod's series; the dashboard, the adapter and the rules use them.
TARGET_LABELS = {"namespace": "danmaku", "pod": "danmaku-classifier-0"}
# Values of the dashboard's variables: Grafana's "All" is the regex .*; the rate window covers the whole load.
VARIABLES = {"$job": JOB, "$namespace": ".*", "$pod": ".*", "$__rate_interval": "30s"}
LOAD_S = 6.0
GUARD_S = 120
TEXTS = [
    "前方高能！！",
    "哈哈哈哈哈哈哈哈",
    "这首歌是周杰伦的晴天",
    "主播今天状态不错啊，操作太秀了，这波团战打得漂亮",
    "awsl",
    "233333",
    "这个地方是在上海拍的吧，外滩的夜景真好看，下次也想去",
    "泪目了",
]


@dataclass(frozen=True)
class Live:
    prometheus: str
    load: dict[int, int]  # HTTP status -> count, from the clients' side


def panels() -> list[dict[str, Any]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"an unknown dashboard variable in {expr}"
    return expr


def wait_until(what: str, check: Any, timeout_s: float = GUARD_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


async def generate_load(base: str, seconds: float) -> dict[int, int]:
    """Eight clients for ``seconds``: mixed batches, 64-comment bursts (429s past the small queue), invalid bodies."""
    statuses: dict[int, int] = {}
    stop = time.monotonic() + seconds

    async def client(number: int, client: httpx.AsyncClient) -> None:
        sent = 0
        while time.monotonic() < stop:
            sent += 1
            if number == 0 and sent % 5 == 0:
                body: dict[str, Any] = {"comments": [{"id": "x"}]}  # no text: 422
            else:
                count = 64 if number >= 4 else 1 + (sent * 7 + number) % 24
                comments = [{"id": str(i), "text": TEXTS[(i + sent) % len(TEXTS)] * (1 + i % 3)} for i in range(count)]
                body = {"comments": comments, "mode": "recall" if sent % 2 else "precision"}
            response = await client.post(base + "/classify", json=body)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(client(number, http) for number in range(8)))
    return statuses


@pytest.fixture(scope="module")
def live(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    prometheus_binary = shutil.which("prometheus")
    if prometheus_binary is None:
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    work = tmp_path_factory.mktemp("prometheus")
    api_port, metrics_port, prometheus_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DANMAKU_WARMUP_RUNS": "0",
        "DANMAKU_METRICS_PORT": str(metrics_port),
        "DANMAKU_MAX_COMMENTS_PER_REQUEST": "64",
        "DANMAKU_MAX_QUEUE_SIZE": "96",  # four clients sending 64 comments at once overflow it: 429s
        # Every top label routed, so the information model runs whatever the random tiny emotion model says.
        "DANMAKU_ROUTED_LABELS": ",".join(MAIN_LABELS),
    }
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"], "labels": TARGET_LABELS}],
            }
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    processes: list[subprocess.Popen[bytes]] = []
    service_log, prometheus_log = (work / "service.log").open("wb"), (work / "prometheus.log").open("wb")
    try:
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "service.cli", "--port", str(api_port), "--models-dir", str(tiny_models_dir)],
                env=env,
                stdout=service_log,
                stderr=subprocess.STDOUT,
            )
        )
        processes.append(
            subprocess.Popen(
                [
                    prometheus_binary,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                stdout=prometheus_log,
                stderr=subprocess.STDOUT,
            )
        )
        base, prometheus = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prometheus_port}"

        def alive() -> None:
            for process, log in zip(processes, (service_log, prometheus_log), strict=True):
                assert process.poll() is None, Path(log.name).read_text(encoding="utf-8", errors="replace")[-4000:]

        def ready(url: str) -> bool:
            alive()
            return httpx.get(url, timeout=2).status_code == 200

        wait_until("the service", lambda: ready(base + "/readyz"))
        wait_until("Prometheus", lambda: ready(prometheus + "/-/ready"))
        wait_until("a first scrape", lambda: bool(query(prometheus, f'up{{job="{JOB}"}} == 1')))
        statuses = asyncio.run(generate_load(base, LOAD_S))
        alive()
        time.sleep(2.5)  # two more scrapes: the last counts are in
        yield Live(prometheus, statuses)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        service_log.close()
        prometheus_log.close()


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """An instant query; raises with Prometheus' error for a query it refuses."""
    response = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    if body.get("status") != "success":
        raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    assert body["data"]["resultType"] == "vector", expr
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def finite(result: list[dict[str, Any]]) -> list[float]:
    values = [float(sample["value"][1]) for sample in result]
    return [value for value in values if math.isfinite(value)]


def test_the_load_met_every_path(live: Live) -> None:
    assert live.load.get(200, 0) > 20 and live.load.get(429, 0) > 0 and live.load.get(422, 0) > 0, live.load


def test_every_dashboard_query_returns_data(live: Live) -> None:
    empty = []
    checked = 0
    for panel in panels():
        for target in panel["targets"]:
            expr = substitute(target["expr"])
            checked += 1
            if not finite(query(live.prometheus, expr)):
                empty.append(f"{panel['title']} [{target['refId']}]: {expr}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)
    print(f"\n{checked} panel queries of {len(panels())} panels returned data")


def test_dashboard_variables_resolve(live: Live) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match is not None, variable["query"]
        selector = match.group(1).replace("$job", JOB).replace("$namespace", ".*")
        response = httpx.get(
            f"{live.prometheus}/api/v1/label/{match.group(2)}/values", params={"match[]": selector}, timeout=10
        ).json()
        assert response["data"] == [TARGET_LABELS[match.group(2)]], (variable["name"], response)


def test_the_hpa_adapter_queries_return_per_pod_values(live: Live) -> None:
    rules = yaml.safe_load(ADAPTER_RULES.read_text(encoding="utf-8"))["rules"]
    for rule in rules:
        series = httpx.get(
            live.prometheus + "/api/v1/series", params={"match[]": rule["seriesQuery"]}, timeout=10
        ).json()["data"]
        assert series, f"seriesQuery {rule['seriesQuery']} matches nothing"
        name = re.match(r"^(\w+)\{", rule["seriesQuery"])
        assert name is not None
        # What the adapter substitutes for one pod of the HPA's namespace, grouping by pod.
        expr = (
            rule["metricsQuery"]
            .replace("<<.Series>>", name.group(1))
            .replace("<<.LabelMatchers>>", 'namespace="{namespace}",pod=~"{pod}"'.format(**TARGET_LABELS))
            .replace("<<.GroupBy>>", "pod")
        )
        result = query(live.prometheus, expr)
        assert [sample["metric"] for sample in result] == [{"pod": TARGET_LABELS["pod"]}], (expr, result)
        assert finite(result), (expr, result)


def test_every_alert_expression_evaluates_against_live_metrics(live: Live) -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]
    for rule in rules:
        query(live.prometheus, rule["expr"])  # raises on a query Prometheus refuses

    # The same rules as Prometheus loaded and evaluated them (every second here).
    def evaluated() -> bool:
        groups = httpx.get(live.prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
        return bool(groups) and not any(group["lastEvaluation"].startswith("0001-") for group in groups)  # zero time

    wait_until("every rule group evaluated", evaluated, timeout_s=30)
    loaded = [
        rule
        for group in httpx.get(live.prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
        for rule in group["rules"]
    ]
    assert sorted(rule["name"] for rule in loaded) == sorted(rule["alert"] for rule in rules)
    unhealthy = {rule["name"]: rule.get("lastError") for rule in loaded if rule["health"] != "ok"}
    assert not unhealthy, unhealthy
    # Healthy traffic: none of the availability, error or drift alerts may be pending or firing.
    active = {rule["name"] for rule in loaded if rule["state"] != "inactive"}
    assert active <= {"DanmakuOverloaded", "DanmakuQueueNearBound"}, active
    print(f"\n{len(rules)} alert expressions evaluated; Prometheus reports every rule healthy")


# ---------------------------------------------------------------- the dashboard file itself (no Prometheus needed)


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert "${DS_" not in DASHBOARD.read_text(encoding="utf-8"), "use the datasource variable, not an import input"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "namespace", "pod"}
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert '{job="$job",namespace=~"$namespace",pod=~"$pod"' in target["expr"], (panel["title"], target)


def test_the_dashboard_has_the_panels_operators_look_for() -> None:
    titles = " | ".join(panel["title"].lower() for panel in panels())
    for wanted in (
        "status",
        "latency",
        "queue depth",
        "queue wait",
        "batch size",
        "tokens",
        "padding",
        "inference time",
        "routed share",
        "label mix",
        "rejections",
        "model versions",
    ):
        assert wanted in titles, f"no panel about {wanted!r}: {titles}"
