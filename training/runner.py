"""Run registered stages in order; skip a stage whose inputs, config and outputs are unchanged.

A stage is a registered entry: a name, the config section it reads, the paths it reads and
writes, and a function. After a stage finishes, its *stamp* (``<run_dir>/stamps/<stage>.json``)
records a fingerprint (sha256 of the stage's config section, the shared settings and the content
hash of every input) and the content hash of every output. On the next run the stage is skipped
when the fingerprint is the same and every output still has its recorded hash; otherwise it runs
again, and since its outputs are the next stage's inputs, a change flows down the pipeline.

Resume: a stage killed midway has no new stamp, so it runs again; a training stage then resumes
from its last finished epoch (``training.modeling.trainer``), the others are short and redo
their work, writing outputs atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.hashing import ContentHasher, settings_hash
from training.tables import write_json

logger = logging.getLogger(__name__)

STAMP_DIR = "stamps"


class PipelineError(RuntimeError):
    """A stage cannot run (a missing input, a stage not available in this build...)."""


@dataclass(frozen=True)
class Stage:
    """One registered pipeline stage.

    ``settings`` returns the JSON-ready config the stage depends on (its section plus any shared
    keys); ``inputs``/``outputs`` the files or directories it reads and writes; ``run`` does the
    work given the stage fingerprint (training uses it to validate its resume checkpoint).
    """

    name: str
    section: str
    settings: Callable[[], dict[str, Any]]
    inputs: Callable[[], list[Path]]
    outputs: Callable[[], list[Path]]
    run: Callable[[str], None]
    enabled: bool = True
    description: str = ""


@dataclass
class StageOutcome:
    name: str
    status: str  # ran | skipped | disabled | would-run (dry run)
    seconds: float = 0.0
    reason: str = ""


HASH_CACHE = "hashes.json"


@dataclass
class StageRunner:
    """Executes stages with stamps (and a cache of file hashes) under ``run_dir/stamps``."""

    run_dir: Path
    hasher: ContentHasher = field(init=False)

    def __post_init__(self) -> None:
        self.hasher = ContentHasher(self.run_dir / STAMP_DIR / HASH_CACHE)

    def stamp_path(self, stage: Stage) -> Path:
        return self.run_dir / STAMP_DIR / f"{stage.name}.json"

    def fingerprint(self, stage: Stage) -> tuple[str, dict[str, str]]:
        inputs: dict[str, str] = {}
        for path in stage.inputs():
            digest = self.hasher.path(path)
            if digest is None:
                raise PipelineError(f"stage {stage.name!r}: input {path} does not exist")
            inputs[str(path)] = digest
        payload = {"stage": stage.name, "settings": stage.settings(), "inputs": inputs}
        return settings_hash(payload), inputs

    def _outputs(self, stage: Stage) -> dict[str, str | None]:
        return {str(path): self.hasher.path(path) for path in stage.outputs()}

    def up_to_date(self, stage: Stage, fingerprint: str) -> tuple[bool, str]:
        path = self.stamp_path(stage)
        if not path.is_file():
            return False, "never finished"
        try:
            stamp = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False, "unreadable stamp"
        if stamp.get("fingerprint") != fingerprint:
            return False, "inputs or config changed"
        outputs = self._outputs(stage)
        if any(digest is None for digest in outputs.values()):
            return False, "an output is missing"
        if outputs != stamp.get("outputs"):
            return False, "an output changed since it was written"
        return True, "inputs, config and outputs unchanged"

    def run(
        self,
        stages: Sequence[Stage],
        *,
        start: str | None = None,
        stop: str | None = None,
        force: Sequence[str] = (),
        dry_run: bool = False,
    ) -> list[StageOutcome]:
        names = [stage.name for stage in stages]
        for name in (start, stop, *force):
            if name is not None and name not in names:
                raise PipelineError(f"unknown stage {name!r}; stages are {names}")
        first = names.index(start) if start else 0
        last = names.index(stop) if stop else len(names) - 1
        try:
            return self._run(stages, first, last, force, dry_run)
        finally:
            self.hasher.save()

    def _run(
        self, stages: Sequence[Stage], first: int, last: int, force: Sequence[str], dry_run: bool
    ) -> list[StageOutcome]:
        outcomes: list[StageOutcome] = []
        pending: set[Path] = set()  # dry run: outputs of stages that would run
        for index, stage in enumerate(stages):
            if not first <= index <= last:
                continue
            if not stage.enabled:
                outcomes.append(StageOutcome(stage.name, "disabled", reason="not configured"))
                logger.info("stage %-10s disabled (not configured)", stage.name)
                continue
            if dry_run and pending.intersection(stage.inputs()):
                outcomes.append(StageOutcome(stage.name, "would-run", reason="an upstream stage would run"))
                pending.update(stage.outputs())
                continue
            try:
                fingerprint, inputs = self.fingerprint(stage)
            except PipelineError:
                if dry_run:
                    outcomes.append(StageOutcome(stage.name, "would-run", reason="inputs not built yet"))
                    pending.update(stage.outputs())
                    continue
                raise
            fresh, reason = self.up_to_date(stage, fingerprint)
            if fresh and stage.name not in force:
                outcomes.append(StageOutcome(stage.name, "skipped", reason=reason))
                logger.info("stage %-10s skipped: %s", stage.name, reason)
                continue
            if stage.name in force:
                reason = "forced"
            if dry_run:
                outcomes.append(StageOutcome(stage.name, "would-run", reason=reason))
                pending.update(stage.outputs())
                continue
            logger.info("stage %-10s running (%s)", stage.name, reason)
            started = time.monotonic()
            self.stamp_path(stage).unlink(missing_ok=True)
            stage.run(fingerprint)
            seconds = time.monotonic() - started
            outputs = self._outputs(stage)
            missing = [path for path, digest in outputs.items() if digest is None]
            if missing:
                raise PipelineError(f"stage {stage.name!r} finished without writing {missing}")
            write_json(
                self.stamp_path(stage),
                {
                    "stage": stage.name,
                    "fingerprint": fingerprint,
                    "settings": stage.settings(),
                    "inputs": inputs,
                    "outputs": outputs,
                    "finished_at": datetime.now(timezone.utc).isoformat(),
                    "seconds": round(seconds, 3),
                },
            )
            outcomes.append(StageOutcome(stage.name, "ran", seconds=seconds, reason=reason))
            logger.info("stage %-10s done in %.1f s", stage.name, seconds)
        return outcomes
