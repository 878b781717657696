"""Every file a bundle names resolves inside its directory (issue 9, defect 5); a joint bundle's contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.bundle import BundleError, carries_information_head, information_head, load_bundle


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


# --- a joint emotion bundle: the information head rides on the emotion bundle ----------------------


@pytest.fixture
def joint_dir(tiny_joint_models_dir: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "models" / "emotion"
    shutil.copytree(tiny_joint_models_dir / "emotion", directory)
    return directory


def edit_metadata(directory: Path, **changes: object) -> None:
    path = directory / "bundle.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata.update(changes)
    path.write_text(json.dumps(metadata), encoding="utf-8")


def test_a_joint_bundle_is_accepted(joint_dir: Path) -> None:
    metadata = load_bundle(joint_dir).metadata
    assert metadata.task == "emotion" and carries_information_head(metadata)
    assert [head.name for head in metadata.heads] == ["main", "sub", "information"]
    assert "features" in metadata.inputs and metadata.features
    assert information_head(metadata).output == "information_logits"


def test_an_information_head_without_the_features_input_is_refused(joint_dir: Path) -> None:
    edit_metadata(joint_dir, inputs=["input_ids", "attention_mask", "token_type_ids"], features=[])
    with pytest.raises(BundleError, match=r"joint bundle.*takes the 'features' input") as caught:
        load_bundle(joint_dir)
    assert caught.value.path == str(joint_dir / "bundle.json")


def test_a_features_input_without_an_information_head_is_refused(joint_dir: Path) -> None:
    metadata = json.loads((joint_dir / "bundle.json").read_text(encoding="utf-8"))
    edit_metadata(joint_dir, heads=metadata["heads"][:2])
    with pytest.raises(BundleError, match="'features' input only with an 'information' head") as caught:
        load_bundle(joint_dir)
    assert caught.value.path == str(joint_dir / "bundle.json")


def test_an_information_head_with_other_labels_is_refused(joint_dir: Path) -> None:
    metadata = json.loads((joint_dir / "bundle.json").read_text(encoding="utf-8"))
    metadata["heads"][2]["labels"] = ["information", "others"]
    edit_metadata(joint_dir, heads=metadata["heads"])
    with pytest.raises(BundleError, match="one sigmoid logit labelled 'information'"):
        load_bundle(joint_dir)


def test_a_two_head_emotion_bundle_has_no_information_head(bundle_dir: Path) -> None:
    metadata = load_bundle(bundle_dir).metadata
    assert not carries_information_head(metadata)
    with pytest.raises(KeyError):
        information_head(metadata)
