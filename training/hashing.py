"""Content hashes of files, directories and settings: what the pipeline runner compares to decide
whether a stage's inputs or config changed since its last run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from service.bundle import sha256_of


class ContentHasher:
    """sha256 of files and directories, memoised by (path, size, mtime): a stage's output is not
    hashed again when the next stage reads it, and with ``cache_file`` not on the next run either
    (a no-op run over GB-sized models then takes a second). A file rewritten with the same size
    and modification time to the nanosecond would be missed; nothing in the pipeline does that."""

    def __init__(self, cache_file: Path | None = None) -> None:
        self._memo: dict[str, str] = {}
        self._cache_file = cache_file
        if cache_file is not None and cache_file.is_file():
            try:
                loaded = json.loads(cache_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                loaded = {}
            if isinstance(loaded, dict):
                self._memo = {str(key): str(value) for key, value in loaded.items()}

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in self._memo:
            self._memo[key] = sha256_of(path)
        return self._memo[key]

    def save(self) -> None:
        """Persist the memo (only entries of files that still exist with that size and mtime)."""
        if self._cache_file is None:
            return
        live: dict[str, str] = {}
        for key, digest in self._memo.items():
            name, size, mtime = key.rsplit("|", 2)
            try:
                stat = Path(name).stat()
            except OSError:
                continue
            if str(stat.st_size) == size and str(stat.st_mtime_ns) == mtime:
                live[key] = digest
        self._cache_file.parent.mkdir(parents=True, exist_ok=True)
        staging = self._cache_file.with_name(f".{self._cache_file.name}.tmp")
        staging.write_text(json.dumps(live, indent=0), encoding="utf-8")
        staging.replace(self._cache_file)

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


def training_fingerprint(settings: BaseModel, preprocessing: BaseModel, seed: int, inputs: Mapping[str, Path]) -> str:
    """What a training run depends on: its settings, preprocessing, seed and the content of its inputs.

    A resumed run continues only from checkpoints written under the same fingerprint.
    """
    hasher = ContentHasher()
    return settings_hash(
        {
            "settings": settings.model_dump(mode="json"),
            "preprocessing": preprocessing.model_dump(mode="json"),
            "seed": seed,
            **{name: hasher.path(path) for name, path in inputs.items()},
        }
    )
