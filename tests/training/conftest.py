"""Fixtures of the training tests: tiny models trained once per session on synthetic labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.text import Preprocessing
from tests.fixtures.labelled import synthetic_records
from training.modeling.settings import TrainingSettings

QUICK = TrainingSettings(epochs=1, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, max_sequence_length=24)


@pytest.fixture(scope="session")
def trained_model_dirs(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> dict[str, Path]:
    """``{"emotion": dir, "information": dir}``: saved classifiers (training.modeling.saved)."""
    from training.modeling.fine_tune import fine_tune_emotion, fine_tune_information

    root = tmp_path_factory.mktemp("trained")
    records = synthetic_records(60, seed=21)
    emotion = fine_tune_emotion(
        records,
        encoder=str(tiny_encoder_dir),
        settings=QUICK,
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=root / "emotion",
        fingerprint="fixture",
        progress=False,
    )
    information = fine_tune_information(
        records,
        encoder=str(tiny_encoder_dir),
        settings=QUICK,
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=root / "information",
        fingerprint="fixture",
        progress=False,
    )
    return {"emotion": emotion.directory, "information": information.directory}
