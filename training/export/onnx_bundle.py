"""Export a trained classifier as a model bundle (see ``service/bundle.py`` for the contract).

The bundle is built in a temporary sibling directory and renamed into place only after the
ONNX graph passed a parity check against PyTorch and ``service.bundle.load_bundle`` accepted it,
so a crash mid-export never leaves a half-written bundle where the service would load it.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from service.bundle import (
    FEATURES_INPUT,
    Bundle,
    BundleMetadata,
    Head,
    OnnxSpec,
    TokenizerSpec,
    load_bundle,
    sha256_of,
    takes_features,
    write_metadata,
)
from service.text import TEXT_FEATURE_NAMES, Preprocessing, preprocess, text_features

DEFAULT_OPSET = 18
# fp32 CPU: ONNX Runtime fuses attention differently from PyTorch; 1e-4 is generous for
# logits of O(1) and tight enough to catch a wrong input order or a missing mask.
DEFAULT_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graph does not match the PyTorch model."""


@dataclass(frozen=True)
class BundleSpec:
    """What the export writes into ``bundle.json`` besides what it measures itself."""

    name: str
    task: Literal["emotion", "information"]
    version: str
    base_encoder: str
    heads: list[Head]
    max_sequence_length: int
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


class _PositionalWrapper(nn.Module):
    """torch.onnx traces positional arguments; this maps them onto the model's keyword inputs."""

    def __init__(self, model: nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(**dict(zip(self.input_names, tensors, strict=True)))
        return outputs if isinstance(outputs, tuple) else (outputs,)


def model_input_names(tokenizer: PreTrainedTokenizerBase, task: str, heads: Sequence[Head]) -> list[str]:
    """The ONNX inputs: the tokenizer's, plus ``features`` when the model has an information head
    (an information model, or a joint emotion model)."""
    names: list[str] = [
        name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenizer.model_input_names
    ]
    if takes_features(task, heads):
        names.append(FEATURES_INPUT)
    return names


def encode_texts(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    input_names: Sequence[str],
    max_sequence_length: int,
    preprocessing: Preprocessing,
) -> dict[str, torch.Tensor]:
    """Preprocess + tokenise (+ text features) exactly as serving does; tensors keyed by input name."""
    cleaned = [preprocess(text, preprocessing) for text in texts]
    encoded = tokenizer(cleaned, truncation=True, max_length=max_sequence_length, padding=True, return_tensors="pt")
    batch = {name: encoded[name] for name in input_names if name != FEATURES_INPUT}
    if FEATURES_INPUT in input_names:
        batch[FEATURES_INPUT] = torch.tensor([text_features(text) for text in cleaned], dtype=torch.float32)
    return batch


def _export_onnx(model: nn.Module, example: dict[str, torch.Tensor], path: Path, output_names: list[str]) -> None:
    names = list(example)
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence")
    # One entry: the wrapper's *tensors varargs, itself a tuple with one spec per input.
    dynamic_shapes = (tuple({0: batch} if name == FEATURES_INPUT else {0: batch, 1: sequence} for name in names),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _PositionalWrapper(model, names),
            tuple(example[name] for name in names),
            str(path),
            input_names=names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=DEFAULT_OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def parity_max_abs_diff(model: nn.Module, onnx_path: Path, batch: dict[str, torch.Tensor]) -> float:
    """Largest absolute logit difference between PyTorch and ONNX Runtime (CPU) on ``batch``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(**batch)
    expected_tuple = expected if isinstance(expected, tuple) else (expected,)
    actual = session.run(None, {name: tensor.numpy() for name, tensor in batch.items()})
    return max(
        float(np.max(np.abs(out - ref.float().numpy()))) for out, ref in zip(actual, expected_tuple, strict=True)
    )


def export_bundle(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    spec: BundleSpec,
    out_dir: Path | str,
    *,
    parity_texts: Sequence[str],
    tolerance: float = DEFAULT_TOLERANCE,
) -> Bundle:
    """Export ``model`` to ``out_dir`` as a bundle, check parity on ``parity_texts``, return it loaded."""
    if len(parity_texts) < 2:
        raise ValueError("parity_texts needs at least two texts (a padded batch is part of the check)")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu").float()
    input_names = model_input_names(tokenizer, spec.task, spec.heads)
    batch = encode_texts(
        parity_texts,
        tokenizer,
        input_names=input_names,
        max_sequence_length=spec.max_sequence_length,
        preprocessing=spec.preprocessing,
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    # mkdtemp makes the directory owner-only; a service running as another user must read it.
    staging.chmod(0o755)
    try:
        tokenizer.save_pretrained(str(staging))
        onnx_path = staging / "model.onnx"
        _export_onnx(model, batch, onnx_path, [head.output for head in spec.heads])
        max_diff = parity_max_abs_diff(model, onnx_path, batch)
        if not max_diff <= tolerance:
            raise ExportError(
                f"ONNX parity failed for {spec.name}: max |torch - onnx| = {max_diff:.3g} > {tolerance:.3g}"
            )
        pad_token_id = tokenizer.pad_token_id
        if pad_token_id is None:
            raise ExportError("the tokenizer has no pad token; set one before export")
        metadata = BundleMetadata(
            name=spec.name,
            task=spec.task,
            version=spec.version,
            base_encoder=spec.base_encoder,
            inputs=input_names,
            max_sequence_length=spec.max_sequence_length,
            features=list(TEXT_FEATURE_NAMES) if FEATURES_INPUT in input_names else [],
            heads=spec.heads,
            preprocessing=spec.preprocessing,
            tokenizer=TokenizerSpec(file="tokenizer.json", pad_token_id=int(pad_token_id)),
            onnx=OnnxSpec(
                file="model.onnx",
                sha256=sha256_of(onnx_path),
                opset=DEFAULT_OPSET,
                precision="fp32",
                parity_max_abs_diff=max_diff,
            ),
            provenance=spec.provenance,
            metrics=spec.metrics,
        )
        write_metadata(staging, metadata)
        load_bundle(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_bundle(out_dir)
