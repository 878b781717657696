"""Reduced-precision variants of an exported bundle: int8 (CPU) and fp16 (GPU).

- int8: ONNX Runtime dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``,
  signed 7-bit-range per-channel weights of the weight MatMuls, activations quantised at run time,
  the MatMuls under the module paths of ``float_scopes`` kept float32 (the export stage's
  ``int8_float_scopes``):
  about 4x smaller on CPU; a few label decisions in a hundred can flip (see its parity figures).
- fp16: ``onnxruntime.transformers.float16.convert_float_to_float16`` with ``keep_io_types``,
  so inputs and logits stay float32 and serving code does not change; meant for the CUDA provider.

A variant is a complete bundle of its own (``<name>-int8``/``<name>-fp16``: tokenizer, bundle.json
with ``onnx.precision``, its sha256, and its parity figure against the PyTorch model measured with
ONNX Runtime on CPU), written to a staging directory and renamed into place.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from service.activations import activate
from service.bundle import BUNDLE_FILE, Bundle, load_bundle, sha256_of, write_metadata
from training.export.onnx_bundle import encode_texts

Precision = Literal["int8", "fp16"]


@contextlib.contextmanager
def _quiet_root_warnings() -> Iterator[None]:
    """The quantiser logs a generic 'consider pre-processing' warning on the root logger at every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _module_path(node: object) -> str:
    """The PyTorch module path the dynamo exporter recorded on an ONNX node ('' when absent)."""
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == "pkg.torch.onnx.name_scopes":
            return str(prop.value)
    return ""


def float_nodes(model: object, scopes: Sequence[str]) -> list[str]:
    """Names of the MatMul/Gemm nodes whose module path contains one of ``scopes`` (kept float)."""
    graph = model.graph  # type: ignore[attr-defined]
    return [
        node.name
        for node in graph.node
        if node.op_type in ("MatMul", "Gemm") and any(scope in _module_path(node) for scope in scopes)
    ]


def quantize_int8(source: Path, target: Path, *, float_scopes: Sequence[str] = ()) -> None:
    """Dynamic int8 of ``source`` into ``target``; MatMuls under ``float_scopes`` (module paths) stay float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    keep_float = float_nodes(model, float_scopes)
    # The dynamo exporter records value_info from the example batch; ONNX shape inference (run by
    # the quantiser) then sees fixed sizes that conflict with the dynamic axes. Dropping it is safe:
    # value_info is only a hint and is re-inferred.
    del model.graph.value_info[:]
    cleaned = target.with_name(f".{target.name}.clean.onnx")
    onnx.save(model, str(cleaned))
    try:
        with _quiet_root_warnings():
            # Per-channel weight scales and weight-only MatMuls (attention's activation x activation
            # products stay float): on the e5 emotion model this halved the decision flips against
            # per-tensor defaults (97.3% vs 95.6% of label decisions unchanged on 128 real comments).
            # reduce_range (7-bit weights): x86 CPUs without VNNI multiply u8 x s8 with AVX2's
            # vpmaddubsw, whose int16 pair sums saturate with full-range weights; ONNX Runtime
            # recommends reduce_range there. With it the int8 model computes the same numbers on
            # CPUs with and without AVX-512/VNNI (tiny test model, AMD Zen3 without VNNI: max logit
            # difference 0.198 -> 0.021).
            quantize_dynamic(
                str(cleaned),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                nodes_to_exclude=keep_float,
                extra_options={"MatMulConstBOnly": True},
            )
    finally:
        cleaned.unlink(missing_ok=True)


def convert_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def _run_onnx(path: Path, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(out, dtype=np.float32) for out in session.run(None, {k: v.numpy() for k, v in batch.items()})]


def write_variant(
    bundle: Bundle,
    precision: Precision,
    out_dir: Path,
    *,
    model: nn.Module,
    tokenizer: object,
    parity_texts: Sequence[str],
    float_scopes: Sequence[str] = (),
) -> Bundle:
    """Write the ``precision`` variant of ``bundle`` to ``out_dir`` and return it loaded.

    Recorded: ``onnx.parity_max_abs_diff`` (largest |PyTorch - variant| logit) and, under
    ``metrics.variant``, the share of label decisions (at the bundle's thresholds) that match
    PyTorch on the parity texts.
    """
    metadata = bundle.metadata
    batch = encode_texts(
        parity_texts,
        tokenizer,  # type: ignore[arg-type]
        input_names=metadata.inputs,
        max_sequence_length=metadata.max_sequence_length,
        preprocessing=metadata.preprocessing,
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for item in bundle.directory.iterdir():
            if item.is_file() and item.name not in (metadata.onnx.file, BUNDLE_FILE):
                shutil.copy2(item, staging / item.name)
        onnx_path = staging / "model.onnx"
        if precision == "int8":
            quantize_int8(bundle.onnx_path, onnx_path, float_scopes=float_scopes)
        else:
            convert_fp16(bundle.onnx_path, onnx_path)
        model = model.eval().to("cpu").float()
        with torch.no_grad():
            expected = model(**batch)
        reference = [t.float().numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
        actual = _run_onnx(onnx_path, batch)
        max_diff = max(float(np.max(np.abs(a - r))) for a, r in zip(actual, reference, strict=True))
        same = total = 0
        for head, a, r in zip(metadata.heads, actual, reference, strict=True):
            cut = np.asarray([head.threshold(label) for label in head.labels])
            same += int(((activate(a, head.activation) >= cut) == (activate(r, head.activation) >= cut)).sum())
            total += a.size
        updated = metadata.model_copy(
            update={
                "name": out_dir.name,
                "version": f"{metadata.version}-{precision}",
                "onnx": metadata.onnx.model_copy(
                    update={"sha256": sha256_of(onnx_path), "precision": precision, "parity_max_abs_diff": max_diff}
                ),
                "metrics": {
                    **metadata.metrics,
                    "variant": {
                        "precision": precision,
                        "of": metadata.name,
                        "parity_texts": len(parity_texts),
                        "parity_max_abs_logit_diff": max_diff,
                        "decision_agreement": same / total if total else 1.0,
                        "parity_provider": "CPUExecutionProvider",
                        "onnx_bytes": onnx_path.stat().st_size,
                        "fp32_onnx_bytes": bundle.onnx_path.stat().st_size,
                        **({"float_scopes": list(float_scopes)} if precision == "int8" else {}),
                    },
                },
            }
        )
        write_metadata(staging, updated)
        load_bundle(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_bundle(out_dir)
