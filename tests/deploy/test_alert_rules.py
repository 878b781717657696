"""The alert rules: rendered from their thresholds, identical in both forms, unit-tested with promtool (every alert
firing and not firing), reading only metrics the service exports, each with a runbook section."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import REPO, load_module

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULE_TESTS = ("danmaku.rules.test.yaml", "danmaku.drift.test.yaml")
OPERATIONS = REPO / "docs" / "operations.md"


@pytest.fixture(scope="module")
def alert_rules() -> ModuleType:
    return load_module("scripts/alert_rules.py")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    return found


def rule_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "danmaku.rules.yaml").read_text(encoding="utf-8"))
    return document


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_file()["groups"] for rule in group["rules"] if "alert" in rule]


def test_committed_files_are_rendered_from_the_thresholds(alert_rules: ModuleType) -> None:
    assert alert_rules.main(["--check"]) == 0, "run `python scripts/alert_rules.py` and commit the result"


def test_the_prometheus_rule_carries_the_same_groups_as_the_plain_file(alert_rules: ModuleType) -> None:
    prometheus_rule = yaml.safe_load(alert_rules.PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert prometheus_rule["kind"] == "PrometheusRule"
    assert prometheus_rule["spec"]["groups"] == rule_file()["groups"]
    kustomization = yaml.safe_load((alert_rules.PROMETHEUS_RULE.parent / "kustomization.yaml").read_text("utf-8"))
    assert kustomization["resources"] == [alert_rules.PROMETHEUS_RULE.name]


def test_the_issue_asks_for_these_alerts() -> None:
    assert {rule["alert"] for rule in alerts()} == {
        "DanmakuServiceDown",
        "DanmakuTargetDown",
        "DanmakuNotReady",
        "DanmakuHighErrorRate",
        "DanmakuOverloaded",
        "DanmakuClassifyLatencyHigh",
        "DanmakuQueueNearBound",
        "DanmakuBatchFailures",
        "DanmakuBundleVersionMismatch",
        "DanmakuRoutedShareDrift",
        "DanmakuLabelMixDrift",
    }
    for rule in alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower()), rule["alert"]


def test_thresholds_are_overridable(alert_rules: ModuleType, tmp_path: Path) -> None:
    assert (
        alert_rules.main(["--set", "latency_p99_seconds=0.25", "--set", "job=other", "--out-dir", str(tmp_path)]) == 0
    )
    rendered = yaml.safe_load((tmp_path / "danmaku.rules.yaml").read_text(encoding="utf-8"))
    exprs = {rule["alert"]: rule["expr"] for group in rendered["groups"] for rule in group["rules"]}
    assert exprs["DanmakuClassifyLatencyHigh"].rstrip().endswith("> 0.25")
    assert all('job="other"' in expr and "danmaku-classifier" not in expr for expr in exprs.values())
    with pytest.raises(KeyError, match="latency_p99"):
        alert_rules.load_thresholds(overrides={"latency_p99": "1"})


def test_rules_read_only_metrics_the_service_exports() -> None:
    source = (REPO / "service" / "metrics.py").read_text(encoding="utf-8")
    for rule in alerts():
        for name in set(re.findall(r"\b(danmaku_\w+)", rule["expr"])):
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert f'"{family}"' in source, f"{rule['alert']} reads {name}, which service/metrics.py does not define"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for name in RULE_TESTS:
        document = yaml.safe_load((PROMETHEUS_DIR / name).read_text(encoding="utf-8"))
        assert document["rule_files"] == ["danmaku.rules.yaml"]
        for case in document["tests"]:
            for check in case["alert_rule_test"]:
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"


def test_every_alert_has_a_runbook_section() -> None:
    headings = re.findall(r"^#{2,4} (\S+)", OPERATIONS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    anchors = {heading.strip("`").lower() for heading in headings}
    missing = [rule["alert"] for rule in alerts() if rule["alert"].lower() not in anchors]
    assert not missing, f"docs/operations.md has no section for {missing}"


def test_promtool_checks_the_rule_file(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", "danmaku.rules.yaml"], cwd=PROMETHEUS_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", *RULE_TESTS],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_the_validator_rejects_a_broken_prometheus_rule(validate_k8s: ModuleType, alert_rules: ModuleType) -> None:
    good = yaml.safe_load(alert_rules.PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert validate_k8s.validate([good], ["1.37.0"], "test") == []
    broken = copy.deepcopy(good)
    broken["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    findings = validate_k8s.validate([broken], ["1.37.0"], "test")
    assert any("fro" in finding.problem for finding in findings), findings
