"""Content hashes of files, directories and settings: what the pipeline runner compares to decide
whether a stage's inputs or config changed since its last run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.bundle import sha256_of


class ContentHasher:
    """sha256 of files and directories, memoised by (path, size, mtime) within one process so a
    stage's output is not hashed again when the next stage reads it as input."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, int, int], str] = {}

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._memo:
            self._memo[key] = sha256_of(path)
        return self._memo[key]

    def path(self, path: Path) -> str | None:
        """Hash of a file, or of a directory's files (relative names + contents, hidden files
        skipped: they are staging leftovers); None when the path does not exist."""
        if path.is_file():
            return self.file(path)
        if not path.is_dir():
            return None
        digest = hashlib.sha256()
        for item in sorted(path.rglob("*")):
            relative = item.relative_to(path)
            if item.is_file() and not any(part.startswith(".") for part in relative.parts):
                digest.update(f"{relative.as_posix()}\0{self.file(item)}\n".encode())
        return digest.hexdigest()


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Stable hash of JSON-ready settings (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
