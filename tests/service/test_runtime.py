"""Which bundles the runtime serves: both, or a joint emotion bundle alone (``service_bundles``)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from service.bundle import BundleError
from service.runtime import service_bundles
from service.settings import Settings


def test_two_bundles_are_served_when_the_emotion_bundle_has_no_information_head(tiny_models_dir: Path) -> None:
    bundles = service_bundles(Settings(models_dir=tiny_models_dir))
    assert [bundle.metadata.task for bundle in bundles] == ["emotion", "information"]


def test_a_joint_emotion_bundle_is_served_alone(tiny_joint_models_dir: Path) -> None:
    (bundle,) = service_bundles(Settings(models_dir=tiny_joint_models_dir))
    assert bundle.metadata.name == "emotion"


def test_beside_a_joint_bundle_the_information_bundle_is_not_loaded_and_that_is_logged(
    tiny_joint_models_dir: Path, tiny_models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copytree(tiny_joint_models_dir / "emotion", tmp_path / "emotion")
    shutil.copytree(tiny_models_dir / "information", tmp_path / "information")
    with caplog.at_level(logging.INFO, logger="service.runtime"):
        (bundle,) = service_bundles(Settings(models_dir=tmp_path))
    assert bundle.metadata.name == "emotion"
    assert "carries the information head" in caplog.text and str(tmp_path / "information") in caplog.text


def test_without_an_information_head_the_information_bundle_is_required(tiny_models_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_models_dir / "emotion", tmp_path / "emotion")
    with pytest.raises(BundleError, match="bundle directory does not exist") as caught:
        service_bundles(Settings(models_dir=tmp_path))
    assert caught.value.path == str(tmp_path / "information")
