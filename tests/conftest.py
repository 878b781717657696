"""Shared fixtures: a tiny random encoder and tiny bundles built through the real export path."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.bundles import tiny_encoder

    return tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    """A models directory holding a tiny ``emotion`` and ``information`` bundle (random weights)."""
    from tests.fixtures.bundles import emotion_bundle, information_bundle

    models = tmp_path_factory.mktemp("models")
    emotion_bundle(tiny_encoder_dir, models / "emotion")
    information_bundle(tiny_encoder_dir, models / "information")
    return models


@pytest.fixture(scope="session")
def tiny_joint_models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    """A models directory holding only a tiny joint ``emotion`` bundle (heads main, sub and information)."""
    from tests.fixtures.bundles import joint_bundle

    models = tmp_path_factory.mktemp("joint-models")
    joint_bundle(tiny_encoder_dir, models / "emotion")
    return models


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present (this workplace); tests that need it skip elsewhere."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (only present in the development workplace)")
    return SHARED_DATA
