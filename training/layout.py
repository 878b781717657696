"""Where a pipeline run reads and writes: one directory per stage under ``run_dir``, bundles under
``models_dir``. Which files a stage keeps in its directory is the stage module's business
(``training/stages/<stage>.py``: its ``inputs(layout)`` and ``outputs(layout)``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from training.tables import table_path

if TYPE_CHECKING:
    from training.config import PipelineConfig

MODEL_DIR = "model"  # where a training stage saves its finished model, in its directory


@dataclass(frozen=True)
class RunLayout:
    config: PipelineConfig

    def dir(self, section: str) -> Path:
        """The directory of the stage whose config section is ``section`` (e.g. ``train_v1``)."""
        return self.config.run_dir / section

    def table(self, section: str, name: str) -> Path:
        """Table ``name`` of that stage, in the run's table format."""
        return table_path(self.dir(section), name, self.config.table_format)

    def model(self, section: str) -> Path:
        """The finished model of the training stage whose section is ``section``."""
        return self.dir(section) / MODEL_DIR

    def bundle(self, name: str) -> Path:
        return self.config.models_dir / name
