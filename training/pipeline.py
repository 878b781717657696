"""The training pipeline as a recipe: the stage modules, top to bottom (``STAGES``).

Each stage is one module under ``training/stages/`` with the same shape (``StageModule``): its
settings class (its section of the pipeline config), ``inputs(layout)`` and ``outputs(layout)``
(the paths it reads and writes, from the run layout; a later stage's inputs call an earlier
stage's path functions, so every path is written once) and ``run(layout, settings)``; what each
reads and writes is in its module docstring and in docs/training.md. Adding a
stage is adding its module and one line to ``STAGES``; ``danmaku-train run`` hands them to
``training.runner.StageRunner``, which skips the ones whose inputs and config are unchanged.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from training.config import PipelineConfig
from training.layout import RunLayout
from training.runner import Stage
from training.stages import (
    agree,
    curate,
    distill,
    evaluate,
    export,
    ingest,
    llm_label,
    train_info,
    train_v1,
    train_v2,
)


class StageModule(Protocol):
    """What a module under ``training/stages/`` provides to be a pipeline stage. Optional:
    ``enabled(config) -> bool`` (default: always) and ``ALSO_READS``, the other config sections
    its work depends on (part of its fingerprint; default none)."""

    NAME: str  # the stage and its command, e.g. "train-v1"
    SECTION: str  # its config section and run directory, e.g. "train_v1"
    DESCRIPTION: str
    # and ``Settings``, its pydantic settings class (the config section; the command's options)

    def inputs(self, layout: RunLayout) -> list[Path]: ...

    def outputs(self, layout: RunLayout) -> list[Path]: ...

    def run(self, layout: RunLayout, settings: Any, *, fingerprint: str, progress: bool = True) -> None: ...


STAGES: tuple[StageModule, ...] = (
    ingest,
    llm_label,
    train_v1,
    agree,
    curate,
    train_v2,
    train_info,
    distill,
    export,
    evaluate,
)
STAGE_NAMES: tuple[str, ...] = tuple(module.NAME for module in STAGES)


def build_stages(config: PipelineConfig, *, progress: bool = True) -> list[Stage]:
    """The stages of ``config`` in pipeline order, ready for ``StageRunner``."""
    layout = RunLayout(config)
    shared = {
        "seed": config.seed,
        "preprocessing": config.preprocessing.model_dump(mode="json"),
        "table_format": config.table_format,
    }

    def stage(module: StageModule) -> Stage:
        sections = (module.SECTION, *getattr(module, "ALSO_READS", ()))
        settings: BaseModel | None = getattr(config, module.SECTION)

        def fingerprinted() -> dict[str, Any]:
            return {**shared, **{section: config.section(section) for section in sections}}

        def run(fingerprint: str) -> None:
            module.run(layout, settings, fingerprint=fingerprint, progress=progress)

        return Stage(
            name=module.NAME,
            section=module.SECTION,
            settings=fingerprinted,
            inputs=partial(module.inputs, layout),
            outputs=partial(module.outputs, layout),
            run=run,
            enabled=getattr(module, "enabled", lambda _config: True)(config),
            description=module.DESCRIPTION,
        )

    return [stage(module) for module in STAGES]
