from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.bundle import BundleError, load_bundle
from service.text import TEXT_FEATURE_NAMES


def test_exported_bundles_load_and_match_contract(tiny_models_dir: Path) -> None:
    emotion = load_bundle(tiny_models_dir / "emotion")
    information = load_bundle(tiny_models_dir / "information")
    assert [head.output for head in emotion.metadata.heads] == ["main_logits", "sub_logits"]
    assert information.metadata.features == list(TEXT_FEATURE_NAMES)
    assert information.metadata.inputs[-1] == "features"
    for bundle in (emotion, information):
        assert bundle.metadata.onnx.parity_max_abs_diff is not None
        assert bundle.metadata.onnx.parity_max_abs_diff <= 1e-4
        session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == bundle.metadata.inputs
        widths = {o.name: o.shape[1] for o in session.get_outputs()}
        assert widths == {head.output: len(head.labels) for head in bundle.metadata.heads}


def test_bundle_directory_is_readable_by_other_users(tiny_models_dir: Path) -> None:
    for name in ("emotion", "information"):
        assert (tiny_models_dir / name).stat().st_mode & 0o005 == 0o005


def test_dynamic_batch_and_sequence_axes(tiny_models_dir: Path) -> None:
    bundle = load_bundle(tiny_models_dir / "information")
    session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    for batch, length in [(1, 3), (7, 19)]:
        feed = {
            "input_ids": np.ones((batch, length), dtype=np.int64),
            "attention_mask": np.ones((batch, length), dtype=np.int64),
            "token_type_ids": np.zeros((batch, length), dtype=np.int64),
            "features": np.zeros((batch, 5), dtype=np.float32),
        }
        (logits,) = session.run(None, feed)
        assert logits.shape == (batch, 1)


def test_tampered_onnx_is_refused_with_file_named(tiny_models_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "emotion"
    shutil.copytree(tiny_models_dir / "emotion", copy)
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 mismatch"):
        load_bundle(copy)


def test_inconsistent_metadata_is_refused(tiny_models_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "emotion"
    shutil.copytree(tiny_models_dir / "emotion", copy)
    metadata = json.loads((copy / "bundle.json").read_text())
    metadata["heads"][0]["thresholds"] = {"not-a-label": 0.4}
    (copy / "bundle.json").write_text(json.dumps(metadata))
    with pytest.raises(BundleError, match=r"bundle\.json: invalid metadata: .*unknown labels"):
        load_bundle(copy)


def test_int8_keeps_the_matmuls_of_the_float_scopes_in_float(tiny_models_dir: Path, tmp_path: Path) -> None:
    import onnx

    from training.export.variants import float_nodes, quantize_int8

    source = tiny_models_dir / "emotion" / "model.onnx"
    kept = float_nodes(onnx.load(str(source)), [".output.dense"])
    assert kept, "the exporter's module paths name the output projections"
    every = float_nodes(onnx.load(str(source)), [""])  # every MatMul/Gemm
    assert len(kept) < len(every)

    partial, whole = tmp_path / "partial.onnx", tmp_path / "whole.onnx"
    quantize_int8(source, partial, float_scopes=[".output.dense"])
    quantize_int8(source, whole)
    float_matmuls = {node.name for node in onnx.load(str(partial)).graph.node if node.op_type == "MatMul"}
    assert set(kept) <= float_matmuls  # still float MatMuls, under their own names
    whole_float = {node.name for node in onnx.load(str(whole)).graph.node if node.op_type == "MatMul"}
    assert not set(kept) & whole_float  # without scopes they are quantised too
    assert whole.stat().st_size < partial.stat().st_size < source.stat().st_size


def test_a_joint_bundle_is_one_emotion_bundle_with_the_information_head(tiny_joint_models_dir: Path) -> None:
    bundle = load_bundle(tiny_joint_models_dir / "emotion")
    metadata = bundle.metadata
    assert metadata.task == "emotion"
    assert [head.output for head in metadata.heads] == ["main_logits", "sub_logits", "information_logits"]
    assert metadata.inputs[-1] == "features" and metadata.features == list(TEXT_FEATURE_NAMES)
    assert metadata.onnx.parity_max_abs_diff is not None and metadata.onnx.parity_max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == metadata.inputs
    widths = {o.name: o.shape[1] for o in session.get_outputs()}
    assert widths == {head.output: len(head.labels) for head in metadata.heads}
