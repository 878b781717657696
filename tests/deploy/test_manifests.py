"""deploy/k8s: every kustomization renders, every object passes strict schema validation, and the objects agree
with each other and with the service's contract (ports, probes, labels, metrics, security, the bulk Job)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from service.settings import Settings
from tests.deploy.conftest import REPO

K8S = REPO / "deploy" / "k8s"
SERVICE_OVERLAYS = ("overlays/cpu", "overlays/gpu", "overlays/gpu-vllm", "overlays/cpu-models-from-image")
# The settings the ConfigMap must carry (names agreed with the service; see docs/deployment.md).
CONFIG_KEYS = {
    "DANMAKU_PRECISION_THRESHOLD",
    "DANMAKU_RECALL_THRESHOLD",
    "DANMAKU_MAX_BATCH_SIZE",
    "DANMAKU_MAX_BATCH_TOKENS",
    "DANMAKU_MAX_WAIT_MS",
    "DANMAKU_MAX_QUEUE_SIZE",
    "DANMAKU_METRICS_PORT",
}
# Seconds the lifespan shutdown (batchers stopped, metrics server closed) may take after uvicorn's.
SHUTDOWN_MARGIN_S = 5
# Containers allowed a writable root filesystem, with the reason in their manifest.
WRITABLE_ROOT_CONTAINERS = {"vllm"}

Manifest = dict[str, Any]


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = [item for item in objects if item["kind"] == kind and item["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [item for item in objects if item["kind"] == kind]


def pod_templates(objects: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{item['kind']}/{item['metadata']['name']}", item["spec"]["template"])
        for item in objects
        if item["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
    ]


def api_container(deployment: Manifest) -> dict[str, Any]:
    containers = {container["name"]: container for container in deployment["spec"]["template"]["spec"]["containers"]}
    return containers["api"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ---------------------------------------------------------------- rendering and schema validation


def test_every_kustomization_root_is_found(validate_k8s: ModuleType) -> None:
    roots = {str(root.relative_to(K8S)) for root in validate_k8s.kustomize_roots()}
    assert set(SERVICE_OVERLAYS) | {"jobs/bulk-classify", "monitoring/prometheus-adapter"} <= roots


@pytest.mark.parametrize("version", ["1.33.0", "1.37.0"])
def test_every_rendered_object_passes_strict_schema_validation(
    validate_k8s: ModuleType, rendered: dict[str, list[Manifest]], version: str
) -> None:
    findings = [
        finding for root, objects in rendered.items() for finding in validate_k8s.validate(objects, [version], root)
    ]
    assert not findings, "\n".join(str(finding) for finding in findings)


def test_every_component_is_used_by_a_rendered_overlay(validate_k8s: ModuleType) -> None:
    used = set()
    for root in validate_k8s.kustomize_roots():
        document = yaml.safe_load((root / "kustomization.yaml").read_text(encoding="utf-8"))
        used |= {(root / component).resolve() for component in document.get("components", [])}
    unused = [
        str(component.relative_to(K8S)) for component in validate_k8s.components() if component.resolve() not in used
    ]
    assert not unused, f"components no overlay renders (so nothing validates them): {unused}"


def test_the_validator_rejects_what_it_should(validate_k8s: ModuleType, rendered: dict[str, list[Manifest]]) -> None:
    """The validation above is only worth something if it fails on broken objects."""
    objects = rendered["overlays/cpu"]
    deployment = copy.deepcopy(one(objects, "Deployment", "danmaku-classifier"))
    deployment["spec"]["replica"] = 2  # typo of `replicas`: strict mode must reject unknown fields
    monitor = copy.deepcopy(one(objects, "ServiceMonitor", "danmaku-classifier"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    probe = copy.deepcopy(deployment)
    api_container(probe)["readinessProbe"]["periodSeconds"] = "five"
    unknown = {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "x"}}
    for broken, expected in [(deployment, "replica"), (monitor, "intervall"), (probe, "five"), (unknown, "no schema")]:
        findings = validate_k8s.validate([broken], ["1.37.0"], "test")
        assert any(expected in finding.problem for finding in findings), (expected, findings)


def test_no_secret_values_are_committed(rendered: dict[str, list[Manifest]]) -> None:
    for root, objects in rendered.items():
        assert not of_kind(objects, "Secret"), f"{root} renders a Secret: create secrets out of band"


# ---------------------------------------------------------------- the service: pods, probes, wiring


@pytest.mark.parametrize("overlay", SERVICE_OVERLAYS)
def test_service_selects_the_pods_and_targets_named_ports(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    objects = rendered[overlay]
    deployment = one(objects, "Deployment", "danmaku-classifier")
    service = one(objects, "Service", "danmaku-classifier")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert selects(service["spec"]["selector"], pod_labels)
    port_names = {port["name"] for port in api_container(deployment)["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    pdb = one(objects, "PodDisruptionBudget", "danmaku-classifier")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)


@pytest.mark.parametrize("overlay", SERVICE_OVERLAYS)
def test_probes_use_the_service_endpoints(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    container = api_container(one(rendered[overlay], "Deployment", "danmaku-classifier"))
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    # The startup probe must cover model loading and warm-up: at least two minutes before liveness counts.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert container["args"][container["args"].index("--models-dir") + 1] == "/models"


@pytest.mark.parametrize("overlay", SERVICE_OVERLAYS)
def test_shutdown_leaves_time_to_drain(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    deployment = one(rendered[overlay], "Deployment", "danmaku-classifier")
    pre_stop = api_container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    config = one(rendered[overlay], "ConfigMap", api_container(deployment)["envFrom"][0]["configMapRef"]["name"])
    drain = float(config["data"].get("DANMAKU_DRAIN_TIMEOUT_S", Settings.model_fields["drain_timeout_s"].default))
    # preStop runs inside the grace period; after SIGTERM the whole shutdown (drain, then uvicorn's wait for open
    # connections, which gets what the drain left and at least 1 s) is bounded by the drain timeout; then the
    # lifespan stops the batchers. Past the grace period the kubelet sends SIGKILL (issue 9: 10 + 30 + 30 > 60).
    assert pre_stop + drain + 1 + SHUTDOWN_MARGIN_S <= grace, (pre_stop, drain, grace)
    assert drain >= 10, "admitted requests need time to finish"
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", SERVICE_OVERLAYS)
def test_configmap_carries_the_settings_and_metrics_port(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    objects = rendered[overlay]
    deployment = one(objects, "Deployment", "danmaku-classifier")
    container = api_container(deployment)
    config_name = container["envFrom"][0]["configMapRef"]["name"]
    config = one(objects, "ConfigMap", config_name)["data"]
    assert set(config) >= CONFIG_KEYS
    assert 0 < float(config["DANMAKU_PRECISION_THRESHOLD"]) <= 1
    assert 0 < float(config["DANMAKU_RECALL_THRESHOLD"]) < float(config["DANMAKU_PRECISION_THRESHOLD"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == int(config["DANMAKU_METRICS_PORT"])
    monitor = one(objects, "ServiceMonitor", "danmaku-classifier")
    service = one(objects, "Service", "danmaku-classifier")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= {
        p["name"] for p in service["spec"]["ports"]
    }


@pytest.mark.parametrize("overlay", SERVICE_OVERLAYS)
def test_auth_token_comes_from_a_mounted_secret(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    deployment = one(rendered[overlay], "Deployment", "danmaku-classifier")
    container = api_container(deployment)
    token_file = next(env["value"] for env in container["env"] if env["name"] == "DANMAKU_AUTH_TOKEN_FILE")
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = [mount for mount in container["volumeMounts"] if token_file.startswith(mount["mountPath"] + "/")]
    assert len(mounts) == 1 and mounts[0].get("readOnly") is True
    secret = volumes[mounts[0]["name"]]["secret"]
    assert secret["secretName"] == "danmaku-auth"
    assert token_file.endswith("/" + secret["items"][0]["path"])


@pytest.mark.parametrize("overlay", SERVICE_OVERLAYS)
def test_hpa_scales_the_deployment_on_cpu_and_an_adapter_metric(
    validate_k8s: ModuleType, rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    hpa = one(rendered[overlay], "HorizontalPodAutoscaler", "danmaku-classifier")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "danmaku-classifier",
    }
    assert hpa["spec"]["minReplicas"] >= 2, "one replica cannot survive a disruption"
    kinds = {metric["type"]: metric for metric in hpa["spec"]["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    pods_metric = kinds["Pods"]["pods"]["metric"]["name"]
    adapter = one(rendered["monitoring/prometheus-adapter"], "ConfigMap", "prometheus-adapter")
    rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    exposed = {rule["name"]["as"] for rule in rules}
    assert pods_metric in exposed, f"no prometheus-adapter rule exposes {pods_metric} (rules expose {exposed})"
    for rule in rules:
        series = re.match(r"^(\w+)\{", rule["seriesQuery"])
        assert series is not None and re.fullmatch(rule["name"]["matches"], series.group(1)), rule
        assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


@pytest.mark.parametrize("overlay", SERVICE_OVERLAYS)
def test_network_policy_admits_clients_and_prometheus_only(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    objects = rendered[overlay]
    deployment = one(objects, "Deployment", "danmaku-classifier")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    default_deny = one(objects, "NetworkPolicy", "default-deny")
    assert default_deny["spec"]["podSelector"] == {} and set(default_deny["spec"]["policyTypes"]) == {
        "Ingress",
        "Egress",
    }
    policy = one(objects, "NetworkPolicy", "danmaku-classifier")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    allowed = {
        (rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in policy["spec"]["ingress"]
        for port in rule["ports"]
    }
    assert allowed == {("ingestion", "http"), ("monitoring", "metrics")}
    egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert egress_ports == {53}, "egress is DNS only"


def test_gpu_overlay_requests_one_gpu_and_cpu_overlay_none(rendered: dict[str, list[Manifest]]) -> None:
    gpu = one(rendered["overlays/gpu"], "Deployment", "danmaku-classifier")
    cpu = one(rendered["overlays/cpu"], "Deployment", "danmaku-classifier")
    assert api_container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(toleration["key"] == "nvidia.com/gpu" for toleration in gpu["spec"]["template"]["spec"]["tolerations"])
    assert api_container(gpu)["image"].endswith("-gpu")
    assert "nvidia.com/gpu" not in api_container(cpu)["resources"].get("limits", {})
    assert api_container(cpu)["image"].endswith("-cpu")


def test_models_from_image_replaces_the_pvc_with_an_init_container(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["overlays/cpu-models-from-image"]
    spec = one(objects, "Deployment", "danmaku-classifier")["spec"]["template"]["spec"]
    models = next(volume for volume in spec["volumes"] if volume["name"] == "models")
    assert "emptyDir" in models and "persistentVolumeClaim" not in models
    init = spec["initContainers"][0]
    assert any(mount["name"] == "models" for mount in init["volumeMounts"])
    assert not of_kind(objects, "PersistentVolumeClaim"), "the unused models PVC should be dropped"


# ---------------------------------------------------------------- security of every pod


@pytest.mark.parametrize(
    "root", ["overlays/cpu", "overlays/gpu-vllm", "overlays/cpu-models-from-image", "jobs/bulk-classify"]
)
def test_every_pod_runs_restricted(rendered: dict[str, list[Manifest]], root: str) -> None:
    templates = pod_templates(rendered[root])
    assert templates
    for name, template in templates:
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        mounted_tmp = False
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])
            assert "add" not in context["capabilities"], (name, container["name"])
            if container["name"] not in WRITABLE_ROOT_CONTAINERS:
                assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            mounted_tmp = mounted_tmp or any(
                mount["mountPath"] == "/tmp" for mount in container.get("volumeMounts", [])
            )
        if template["metadata"]["labels"].get("app.kubernetes.io/name") == "danmaku-classifier":
            assert mounted_tmp, f"{name}: a read-only root needs a writable /tmp"


# ---------------------------------------------------------------- the bulk Job


def config_env(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_bulk_job_is_indexed_and_shards_match_completions(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["jobs/bulk-classify"]
    job = one(objects, "Job", "danmaku-bulk-classify")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["danmaku-serve", "classify-file"]
    arguments = dict(argument.split("=", 1) for argument in container["args"])
    assert int(arguments["--num-shards"]) == spec["completions"]
    assert arguments["--shard-index"] == "$(JOB_COMPLETION_INDEX)"
    assert arguments["--models-dir"] == "/models"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # required by backoffLimitPerIndex
    # Same image repository as the service, so the bulk run uses the same router code.
    service = one(rendered["overlays/cpu"], "Deployment", "danmaku-classifier")
    assert container["image"].rsplit(":", 1)[0] == api_container(service)["image"].rsplit(":", 1)[0]
    # Same models claim as the service's base, and the same routing thresholds.
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in spec["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert "danmaku-models" in claims
    config = one(objects, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    service_config = config_env(K8S / "base" / "config.env")
    for key in ("DANMAKU_PRECISION_THRESHOLD", "DANMAKU_RECALL_THRESHOLD"):
        assert config[key] == service_config[key], f"{key}: the bulk Job and the service must route alike"


# ---------------------------------------------------------------- the optional vLLM component


def test_vllm_serves_llama_with_structured_output_on_a_gpu(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["overlays/gpu-vllm"]
    deployment = one(objects, "Deployment", "vllm")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    image, tag = container["image"].rsplit(":", 1)
    assert image == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    assert container["command"] == ["vllm", "serve"]
    arguments = container["args"]
    assert "--served-model-name=meta-llama/Llama-3.1-8B-Instruct" in arguments
    assert any(argument.startswith("--structured-outputs-config.backend=") for argument in arguments)
    assert not any("guided-decoding" in argument for argument in arguments), "removed from vLLM in 0.12"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(env["name"] == "VLLM_API_KEY" and "secretKeyRef" in env["valueFrom"] for env in container["env"])
    service = one(objects, "Service", "vllm")
    assert selects(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])


# ---------------------------------------------------------------- contract with service/ (once it is on the branch)


def test_every_danmaku_variable_is_a_service_setting(rendered: dict[str, list[Manifest]]) -> None:
    """A misspelt or renamed setting is silently ignored by the service: every DANMAKU_* the manifests set must be
    a field of service.settings.Settings."""
    settings = pytest.importorskip("service.settings", reason="service/settings.py is not on this branch yet")
    prefix = getattr(settings, "ENV_PREFIX", "DANMAKU_")
    known = {prefix + name.upper() for name in settings.Settings.model_fields}
    used: dict[str, str] = {}
    for root, objects in rendered.items():
        for config in of_kind(objects, "ConfigMap"):
            used |= {key: f"{root} ConfigMap/{config['metadata']['name']}" for key in config.get("data", {})}
        for name, template in pod_templates(objects):
            for container in template["spec"]["containers"]:
                used |= {env["name"]: f"{root} {name}" for env in container.get("env", [])}
    unknown = {key: where for key, where in used.items() if key.startswith(prefix) and key not in known}
    assert not unknown, f"not settings of the service: {unknown}"


def test_adapter_rules_read_metrics_the_service_exports(rendered: dict[str, list[Manifest]]) -> None:
    metrics_module = REPO / "service" / "metrics.py"
    if not metrics_module.is_file():
        pytest.skip("service/metrics.py is not on this branch yet")
    source = metrics_module.read_text(encoding="utf-8")
    adapter = one(rendered["monitoring/prometheus-adapter"], "ConfigMap", "prometheus-adapter")
    for rule in yaml.safe_load(adapter["data"]["config.yaml"])["rules"]:
        series = re.match(r"^(\w+)\{", rule["seriesQuery"])
        assert series is not None
        family = re.sub(r"_(bucket|sum|count|total)$", "", series.group(1))
        assert f'"{family}"' in source, f"the adapter reads {series.group(1)}, which service/metrics.py does not define"
