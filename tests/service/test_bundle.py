"""Every file a bundle names resolves inside its directory (issue 9, defect 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.bundle import BundleError, load_bundle


@pytest.fixture
def bundle_dir(tiny_models_dir: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "models" / "emotion"
    shutil.copytree(tiny_models_dir / "emotion", directory)
    return directory


def rename_in_metadata(directory: Path, section: str, name: str) -> None:
    path = directory / "bundle.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata[section]["file"] = name
    path.write_text(json.dumps(metadata), encoding="utf-8")


def test_the_copied_bundle_loads(bundle_dir: Path) -> None:
    assert load_bundle(bundle_dir).metadata.task == "emotion"


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "bundle.json"])
def test_a_file_symlinked_out_of_the_bundle_is_refused_by_name(bundle_dir: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / "elsewhere" / name
    outside.parent.mkdir()
    (bundle_dir / name).rename(outside)
    (bundle_dir / name).symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle directory") as caught:
        load_bundle(bundle_dir)
    assert caught.value.path == str(bundle_dir / name)


def test_a_symlink_inside_the_bundle_is_fine(bundle_dir: Path) -> None:
    (bundle_dir / "model.onnx").rename(bundle_dir / "graph.onnx")
    (bundle_dir / "model.onnx").symlink_to("graph.onnx")
    load_bundle(bundle_dir)


def test_a_symlinked_bundle_directory_is_fine(bundle_dir: Path, tmp_path: Path) -> None:
    link = tmp_path / "current"
    link.symlink_to(bundle_dir, target_is_directory=True)
    load_bundle(link)


def test_a_dot_dot_tokenizer_file_is_refused_by_name(bundle_dir: Path) -> None:
    shutil.copy(bundle_dir / "tokenizer.json", bundle_dir.parent / "tokenizer.json")
    rename_in_metadata(bundle_dir, "tokenizer", "../tokenizer.json")
    with pytest.raises(BundleError, match=r"tokenizer\.file.*outside the bundle directory"):
        load_bundle(bundle_dir)


def test_an_absolute_onnx_file_is_refused_by_name(bundle_dir: Path) -> None:
    rename_in_metadata(bundle_dir, "onnx", str((bundle_dir / "model.onnx").resolve()))
    with pytest.raises(BundleError, match=r"onnx\.file.*absolute"):
        load_bundle(bundle_dir)
