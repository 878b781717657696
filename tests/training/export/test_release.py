"""Export of trained models: tuned thresholds, provenance, int8/fp16 variants with parity figures,
and serving-style ONNX probabilities equal to the PyTorch ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.bundle import load_bundle
from tests.fixtures.labelled import synthetic_records
from training.evaluation.predictors import BundlePredictor, CheckpointPredictor
from training.export.release import release

# int8 dynamic quantisation moves logits by a few hundredths on these tiny models; fp16 far less.
INT8_TOLERANCE = 0.1
FP16_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def released(trained_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    validation = synthetic_records(40, seed=31)
    emotion = release(
        trained_model_dirs["emotion"],
        out / "emotion",
        validation=validation,
        provenance={"data": [{"path": "synthetic", "rows": 40}]},
        variants=("int8", "fp16"),
        parity_rows=16,
        min_support=2,
    )
    information = release(
        trained_model_dirs["information"], out / "information", validation=validation, variants=("int8",)
    )
    assert set(emotion.variants) == {"int8", "fp16"} and set(information.variants) == {"int8"}
    return {"emotion": out / "emotion", "information": out / "information", "root": out}


def test_bundle_has_tuned_thresholds_provenance_and_metrics(released: dict[str, Path]) -> None:
    metadata = load_bundle(released["emotion"]).metadata
    main = metadata.head("main")
    assert set(main.thresholds) == set(main.labels)
    assert all(0 < value < 1 for value in main.thresholds.values())
    assert metadata.provenance["data"] == [{"path": "synthetic", "rows": 40}]
    assert metadata.provenance["training"]["fingerprint"] == "fixture"
    validation = metadata.metrics["validation"]
    assert validation["rows"] == 40 and validation["thresholds_tuned_on_this_split"]
    assert validation["tuned"]["macro_f1"] >= validation["default"]["macro_f1"] - 1e-9
    assert metadata.onnx.precision == "fp32" and metadata.onnx.parity_max_abs_diff is not None
    assert metadata.onnx.parity_max_abs_diff <= 1e-4


@pytest.mark.parametrize(
    ("name", "precision", "tolerance"),
    [
        ("emotion-int8", "int8", INT8_TOLERANCE),
        ("emotion-fp16", "fp16", FP16_TOLERANCE),
        ("information-int8", "int8", INT8_TOLERANCE),
    ],
)
def test_variants_load_with_their_parity_figure(
    released: dict[str, Path], name: str, precision: str, tolerance: float
) -> None:
    variant = load_bundle(released["root"] / name)
    metadata = variant.metadata
    assert metadata.name == name
    assert metadata.onnx.precision == precision
    assert metadata.onnx.parity_max_abs_diff is not None
    assert 0 < metadata.onnx.parity_max_abs_diff <= tolerance
    figures = metadata.metrics["variant"]
    assert figures["precision"] == precision and figures["decision_agreement"] >= 0.9
    fp32 = load_bundle(released["root"] / name.rsplit("-", 1)[0]).metadata
    assert metadata.heads == fp32.heads  # same thresholds
    if precision == "int8":
        assert figures["onnx_bytes"] < figures["fp32_onnx_bytes"]


def test_onnx_probabilities_as_serving_computes_them_match_pytorch(
    released: dict[str, Path], trained_model_dirs: dict[str, Path]
) -> None:
    texts = [record.text for record in synthetic_records(30, seed=41)] + ["ＡＢＣ全角　空格", "哈哈哈哈哈哈哈哈", "？"]
    for task in ("emotion", "information"):
        onnx = BundlePredictor(released[task], batch_size=7).probabilities(texts, progress=False)
        torch_side = CheckpointPredictor(trained_model_dirs[task], batch_size=5).probabilities(texts, progress=False)
        assert onnx.keys() == torch_side.keys()
        for head, values in onnx.items():
            assert values.shape == torch_side[head].shape
            np.testing.assert_allclose(values, torch_side[head], atol=1e-5)


def test_a_joint_model_exports_as_one_emotion_bundle_with_its_int8_variant(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    from tests.fixtures.bundles import joint_checkpoint

    checkpoint = joint_checkpoint(tiny_encoder_dir, tmp_path / "joint")
    texts = [record.text for record in synthetic_records(20, seed=43)]
    result = release(
        checkpoint, tmp_path / "models" / "emotion", validation=synthetic_records(40, seed=31), variants=("int8",)
    )
    metadata = result.bundle.metadata
    assert metadata.task == "emotion" and "features" in metadata.inputs
    assert [head.name for head in metadata.heads] == ["main", "sub", "information"]
    assert set(metadata.head("information").thresholds) <= {"information"}  # tuned when it has support
    validation = metadata.metrics["validation"]
    # the information head is scored on the rows of the information task (negatives: routed), not all 40
    assert validation["information"]["default"]["head"] == "information"
    assert 0 < validation["information"]["default"]["rows"] < validation["rows"] == 40
    onnx = BundlePredictor(result.bundle.directory).probabilities(texts, progress=False)
    torch_side = CheckpointPredictor(checkpoint).probabilities(texts, progress=False)
    for head in ("main", "sub", "information"):
        np.testing.assert_allclose(onnx[head], torch_side[head], atol=1e-5)
    int8 = result.variants["int8"].metadata
    assert int8.name == "emotion-int8" and int8.heads == metadata.heads and int8.inputs == metadata.inputs
    assert int8.metrics["variant"]["decision_agreement"] >= 0.9
    assert int8.onnx.parity_max_abs_diff is not None and int8.onnx.parity_max_abs_diff <= INT8_TOLERANCE
