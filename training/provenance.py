"""Provenance written into bundle.json and reports: data files with their sha256 and row counts,
the code's git commit, the settings used."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from training.hashing import ContentHasher


def git_commit(directory: Path | None = None) -> str | None:
    """The commit of the checkout holding this code (with ``+dirty`` when it has local changes), or None."""
    where = directory or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def data_file(
    path: Path, *, rows: int | None = None, role: str | None = None, hasher: ContentHasher | None = None
) -> dict[str, Any]:
    """One data file of a run: path, sha256, rows, role."""
    entry: dict[str, Any] = {"path": str(path), "sha256": (hasher or ContentHasher()).path(path)}
    if rows is not None:
        entry["rows"] = rows
    if role is not None:
        entry["role"] = role
    return entry
