"""OnnxModel on the tiny bundles exported through the real training path, and start-up refusals."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from transformers import AutoTokenizer

from service.bundle import BundleError, load_bundle
from service.model import CPU, CUDA, TENSORRT, OnnxModel, ProviderUnavailable, activate, choose_providers
from service.runtime import Runtime
from service.settings import Settings
from training.export.onnx_bundle import encode_texts

TEXTS = [
    "ＡＷＳＬ！！ 哈哈哈哈哈哈哈",
    "2333333",
    "这首曲子的作者是谁？ 看 https://b23.tv/abc",
    "前方高能" * 20,  # longer than max_sequence_length: truncated
    "  空格   很多  ",
    "😀 未知字符 ☃",
]


@pytest.fixture(scope="module")
def models(tiny_models_dir: Path) -> dict[str, OnnxModel]:
    return {name: OnnxModel.load(load_bundle(tiny_models_dir / name)) for name in ("emotion", "information")}


@pytest.mark.parametrize("name", ["emotion", "information"])
def test_encoding_matches_the_training_export(models: dict[str, OnnxModel], tiny_models_dir: Path, name: str) -> None:
    model = models[name]
    metadata = model.metadata
    reference = encode_texts(
        TEXTS,
        AutoTokenizer.from_pretrained(str(tiny_models_dir / name)),
        input_names=metadata.inputs,
        max_sequence_length=metadata.max_sequence_length,
        preprocessing=metadata.preprocessing,
    )
    encoded = model.encode(TEXTS)
    for row, item in enumerate(encoded):
        length = int(reference["attention_mask"][row].sum())
        assert item.ids == tuple(reference["input_ids"][row][:length].tolist())
        assert item.type_ids == tuple(reference["token_type_ids"][row][:length].tolist())
        if "features" in metadata.inputs:
            assert item.features == pytest.approx(reference["features"][row].tolist())
    assert max(item.length for item in encoded) == metadata.max_sequence_length


@pytest.mark.parametrize("name", ["emotion", "information"])
def test_probabilities_are_the_activated_logits_of_the_graph(
    models: dict[str, OnnxModel], tiny_models_dir: Path, name: str
) -> None:
    model = models[name]
    metadata = model.metadata
    reference = encode_texts(
        TEXTS,
        AutoTokenizer.from_pretrained(str(tiny_models_dir / name)),
        input_names=metadata.inputs,
        max_sequence_length=metadata.max_sequence_length,
        preprocessing=metadata.preprocessing,
    )
    session = ort.InferenceSession(str(tiny_models_dir / name / "model.onnx"), providers=[CPU])
    logits = session.run([head.output for head in metadata.heads], {k: v.numpy() for k, v in reference.items()})
    predictions = model.predict(model.encode(TEXTS))
    for head, head_logits in zip(metadata.heads, logits, strict=True):
        expected = 1.0 / (1.0 + np.exp(-head_logits.astype(np.float64)))
        actual = np.stack([prediction[head.name] for prediction in predictions])
        np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_padding_does_not_change_a_comments_prediction(models: dict[str, OnnxModel]) -> None:
    model = models["information"]
    short, long = model.encode(["awsl", "这首曲子的作者是谁？" * 3])
    alone = model.predict([short])[0]
    padded = model.predict([short, long])[0]
    np.testing.assert_allclose(alone["information"], padded["information"], atol=1e-5)


def test_warm_up_runs_every_shape(models: dict[str, OnnxModel]) -> None:
    models["emotion"].warm_up(runs=1, batch_sizes=(1, 4))


def test_choose_providers() -> None:
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("cpu", [TENSORRT, CUDA, CPU]) == [CPU]
    assert choose_providers("tensorrt", [TENSORRT, CUDA, CPU]) == [TENSORRT, CUDA, CPU]
    with pytest.raises(ProviderUnavailable, match="DANMAKU_EXECUTION_PROVIDER=cuda needs"):
        choose_providers("cuda", [CPU])


def test_activations() -> None:
    logits = np.array([[1000.0, -1000.0, 0.0]])
    assert activate(logits, "sigmoid").tolist() == [[1.0, 0.0, 0.5]]
    probabilities = activate(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]), "softmax")
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0])
    assert np.all(np.isfinite(probabilities))


# --- start-up refusals: every broken bundle names its file and its problem ----------------------


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _drop_last_sub_label(data: dict[str, Any]) -> None:
    data["heads"][1]["labels"].remove("confusion")


def _drop_token_type_ids(data: dict[str, Any]) -> None:
    data["inputs"].remove("token_type_ids")


def _corrupt_json(bundle: Path) -> None:
    (bundle / "bundle.json").write_text("{ not json", encoding="utf-8")


def _append_byte(bundle: Path) -> None:
    with (bundle / "model.onnx").open("ab") as handle:
        handle.write(b"\0")


def _remove_tokenizer(bundle: Path) -> None:
    (bundle / "tokenizer.json").unlink()


BROKEN: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "invalid json": (_corrupt_json, "emotion/bundle.json", "not valid JSON"),
    "output width": (
        lambda bundle: _edit_json(bundle / "bundle.json", _drop_last_sub_label),
        "emotion/model.onnx",
        "output 'sub_logits' has width 22 but bundle.json lists 21 labels",
    ),
    "input names": (
        lambda bundle: _edit_json(bundle / "bundle.json", _drop_token_type_ids),
        "emotion/model.onnx",
        "graph inputs",
    ),
    "sha256": (_append_byte, "emotion/model.onnx", "sha256 mismatch"),
    "missing tokenizer": (_remove_tokenizer, "emotion/tokenizer.json", "missing"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_bundle_stops_start_up_naming_file_and_problem(
    tiny_models_dir: Path, tmp_path: Path, case: str
) -> None:
    models_dir = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models_dir)
    breaker, file_name, problem = BROKEN[case]
    breaker(models_dir / "emotion")
    with pytest.raises(BundleError) as caught:
        Runtime.load(Settings(models_dir=models_dir, warmup_runs=0))
    assert caught.value.path.endswith(file_name)
    assert problem in caught.value.problem


def test_an_unloadable_graph_is_refused(tiny_models_dir: Path, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models_dir)
    (models_dir / "information" / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(BundleError, match=r"information/model.onnx: ONNX Runtime cannot load it"):
        Runtime.load(Settings(models_dir=models_dir, verify_sha256=False))


def test_a_missing_bundle_directory_is_refused(tiny_models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bundle directory does not exist"):
        Runtime.load(Settings(models_dir=tmp_path / "nowhere"))


def test_training_scores_with_the_service_activations() -> None:
    """One sigmoid: the trainer's validation F1 and the offline predictors use the serving function."""
    from service import activations
    from training.evaluation import predictors
    from training.modeling import trainer

    assert trainer.sigmoid is activations.sigmoid and predictors.activate is activations.activate
    assert activations.sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]
