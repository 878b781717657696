"""The training pipeline as a recipe: the stage modules, top to bottom.

    1 ingest      raw danmaku files         -> run/ingest/{comments,texts}.parquet, ingest-report.json
    2 llm-label   unique texts              -> run/llm_label/labels.jsonl (+ resumable checkpoint), report.json
    3 train-v1    labels                    -> run/train_v1/{v1_train,holdout,test}.jsonl, model/
    4 agree       v1 model + holdout        -> run/agree/holdout.jsonl, report.{json,md}
    5 curate      annotated holdout+manual  -> run/curate/curated.jsonl, report.{json,md}
    6 train-v2    curated                   -> run/train_v2/model/
    7 train-info  manual labels (or curated)-> run/train_info/{train,validation}.jsonl, model/
    8 export      v2, info models           -> models/<emotion>[-int8|-fp16], models/<information>[...]
    9 evaluate    bundles + tables          -> run/evaluate/<bundle>/<table>/report.{json,md}, *.png, summary.md

Each stage is one module under ``training/stages/`` with the same shape (``StageModule``): its
settings class (its section of the pipeline config), ``inputs(layout)`` and ``outputs(layout)``
(the paths it reads and writes, from the run layout; a later stage's inputs call an earlier
stage's path functions, so every path is written once) and ``run(layout, settings)``. Adding a
stage is adding its module and one line to ``STAGES``; ``danmaku-train run`` hands them to
``training.runner.StageRunner``, which skips the ones whose inputs and config are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from training.config import PipelineConfig
from training.layout import RunLayout
from training.runner import Stage
from training.stages import agree, curate, evaluate, export, ingest, llm_label, train_info, train_v1, train_v2


class StageModule(Protocol):
    """What a module under ``training/stages/`` provides to be a pipeline stage."""

    NAME: str  # the stage and its command, e.g. "train-v1"
    SECTION: str  # its config section and run directory, e.g. "train_v1"
    DESCRIPTION: str
    ALSO_READS: tuple[str, ...]  # other config sections its work depends on (part of its fingerprint)

    def enabled(self, config: PipelineConfig) -> bool: ...

    def inputs(self, layout: RunLayout) -> list[Path]: ...

    def outputs(self, layout: RunLayout) -> list[Path]: ...

    def run(self, layout: RunLayout, settings: Any, *, fingerprint: str, progress: bool = True) -> None: ...


STAGES: tuple[StageModule, ...] = (ingest, llm_label, train_v1, agree, curate, train_v2, train_info, export, evaluate)
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
        sections = (module.SECTION, *module.ALSO_READS)
        settings: BaseModel | None = getattr(config, module.SECTION)

        def fingerprinted() -> dict[str, Any]:
            return {**shared, **{section: config.section(section) for section in sections}}

        def run(fingerprint: str) -> None:
            module.run(layout, settings, fingerprint=fingerprint, progress=progress)

        def paths(function: Callable[[RunLayout], list[Path]]) -> Callable[[], list[Path]]:
            return lambda: function(layout)

        return Stage(
            name=module.NAME,
            section=module.SECTION,
            settings=fingerprinted,
            inputs=paths(module.inputs),
            outputs=paths(module.outputs),
            run=run,
            enabled=module.enabled(config),
            description=module.DESCRIPTION,
        )

    return [stage(module) for module in STAGES]
