"""ONNX Runtime execution providers side by side on one bundle: CPU fp32, CUDA fp32, CUDA fp16, TensorRT.

Every configuration runs through the service's own model code (``service.model.OnnxModel``:
preprocess -> tokenise -> pad -> session.run -> activation) on the same comments, in one process,
so the ratios are measured side by side. Per batch size: comments/s and per-batch latency
percentiles; per configuration: the largest probability difference against CPU fp32 and the share
of label decisions (at the bundle's thresholds) that agree with it.

    python benchmarks/gpu_inference.py --bundle models/emotion
    python benchmarks/gpu_inference.py --e5-shaped /tmp/e5-shaped   # random weights, e5-small's shape

``--e5-shaped`` exports (through ``training.export``) a random-weight classifier with the shape of
multilingual-e5-small (12 layers, hidden 384, FFN 1536, 12 heads) and a small vocabulary: the
forward pass costs what e5-small costs, without carrying its weights. Needs the ``train`` extra.
Configurations whose provider this onnxruntime build lacks are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.bundle import Bundle, load_bundle, sha256_of, write_metadata  # noqa: E402
from service.model import CPU, CUDA, TENSORRT, OnnxModel  # noqa: E402


@dataclass(frozen=True)
class Config:
    name: str
    providers: list[object]
    fp16: bool


def configs(workdir: Path) -> list[Config]:
    trt_options = {
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(workdir / "trt-cache"),
    }
    return [
        Config("cpu-fp32", [CPU], fp16=False),
        Config("cuda-fp32", [CUDA, CPU], fp16=False),
        Config("cuda-fp16", [CUDA, CPU], fp16=True),
        Config("tensorrt-fp16", [(TENSORRT, trt_options), CUDA, CPU], fp16=False),
    ]


def build_e5_shaped(directory: Path, max_length: int) -> Bundle:
    import torch
    from transformers import AutoTokenizer

    from service.bundle import Head
    from training.encoders.tiny import build_tiny_encoder
    from training.export.onnx_bundle import BundleSpec, export_bundle
    from training.modeling.classifiers import MultiHeadClassifier, load_encoder
    from training.taxonomy import MAIN_LABELS, SUB_LABELS

    encoder = build_tiny_encoder(
        directory / "encoder", hidden_size=384, num_layers=12, num_heads=12, intermediate_size=1536, max_positions=512
    )
    torch.manual_seed(0)
    model = MultiHeadClassifier(load_encoder(str(encoder)), num_main=len(MAIN_LABELS), num_sub=len(SUB_LABELS))
    spec = BundleSpec(
        name="emotion",
        task="emotion",
        version="e5-shaped-random",
        base_encoder="random weights, multilingual-e5-small shape",
        heads=[
            Head(name="main", output="main_logits", labels=list(MAIN_LABELS)),
            Head(name="sub", output="sub_logits", labels=list(SUB_LABELS)),
        ],
        max_sequence_length=max_length,
    )
    texts = ["哈哈哈哈 笑死我了", "前方高能", "这首歌的原曲是什么？", "awsl"]
    tokenizer = AutoTokenizer.from_pretrained(str(encoder))
    return export_bundle(model, tokenizer, spec, directory / "emotion", parity_texts=texts)


def fp16_copy(bundle: Bundle, directory: Path) -> Bundle:
    from training.export.variants import convert_fp16

    target = directory / f"{bundle.directory.name}-fp16"
    shutil.copytree(bundle.directory, target, dirs_exist_ok=True)
    convert_fp16(bundle.onnx_path, target / bundle.metadata.onnx.file)
    onnx = bundle.metadata.onnx.model_copy(
        update={"sha256": sha256_of(target / bundle.metadata.onnx.file), "precision": "fp16"}
    )
    write_metadata(target, bundle.metadata.model_copy(update={"onnx": onnx}))
    return load_bundle(target)


def demo_texts() -> list[str]:
    path = REPO / "training" / "demo_data" / "labels.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def decisions(model: OnnxModel, probabilities: list[dict[str, np.ndarray]]) -> np.ndarray:
    cuts = {head.name: np.array([head.threshold(label) for label in head.labels]) for head in model.metadata.heads}
    return np.concatenate([np.concatenate([p[name] >= cut for name, cut in cuts.items()]) for p in probabilities])


def time_batches(model: OnnxModel, encoded: list, batch_size: int, budget_s: float) -> dict[str, float]:
    batches = [encoded[start : start + batch_size] for start in range(0, len(encoded) - batch_size + 1, batch_size)]
    for batch in batches[:3]:
        model.predict(batch)  # warm-up: CUDA kernels / TensorRT engines for these shapes
    latencies: list[float] = []
    comments = 0
    started = time.perf_counter()
    index = 0
    while time.perf_counter() - started < budget_s or len(latencies) < 5:
        batch = batches[index % len(batches)]
        index += 1
        tick = time.perf_counter()
        model.predict(batch)
        latencies.append((time.perf_counter() - tick) * 1000)
        comments += len(batch)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "comments_per_s": comments / elapsed,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "batches": len(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", type=Path, help="an exported bundle directory (e.g. models/emotion)")
    source.add_argument("--e5-shaped", type=Path, help="build a random e5-small-shaped bundle in this directory")
    parser.add_argument("--batch-sizes", default="1,8,32,64,128", help="comma-separated (default 1,8,32,64,128)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per (config, batch size)")
    parser.add_argument("--max-length", type=int, default=64, help="max tokens for --e5-shaped (default 64)")
    parser.add_argument("--only", default="", help="comma-separated config names to run (default all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import onnxruntime as ort

    available = ort.get_available_providers()
    print(f"onnxruntime {ort.__version__}, providers: {available}")
    workdir = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    bundle = load_bundle(args.bundle) if args.bundle else build_e5_shaped(args.e5_shaped, args.max_length)
    texts = demo_texts()
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    wanted = {name for name in args.only.split(",") if name}

    results: dict[str, object] = {"onnxruntime": ort.__version__, "bundle": str(bundle.directory), "configs": {}}
    reference: np.ndarray | None = None
    reference_probabilities: list[dict[str, np.ndarray]] | None = None
    fp16_bundle: Bundle | None = None
    for config in configs(workdir):
        if wanted and config.name not in wanted:
            continue
        names = [provider[0] if isinstance(provider, tuple) else provider for provider in config.providers]
        missing = [name for name in names if name not in available]
        if missing:
            print(f"\n{config.name}: skipped ({missing} not in this onnxruntime build)")
            results["configs"][config.name] = {"skipped": f"{missing} unavailable"}  # type: ignore[index]
            continue
        if config.fp16 and fp16_bundle is None:
            fp16_bundle = fp16_copy(bundle, workdir)
        chosen = fp16_bundle if config.fp16 else bundle
        assert chosen is not None
        try:
            model = OnnxModel.load(chosen, providers=config.providers)  # type: ignore[arg-type]
        except Exception as exc:  # a provider that is listed but cannot start (no libs, no device)
            print(f"\n{config.name}: failed to start ({type(exc).__name__}: {str(exc)[:300]})")
            results["configs"][config.name] = {"failed": str(exc)[:500]}  # type: ignore[index]
            continue
        encoded = model.encode(texts)
        probabilities = model.predict(encoded[:256])
        agreement = None
        max_diff = None
        if reference is None:
            reference = decisions(model, probabilities)
            reference_probabilities = probabilities
        else:
            assert reference_probabilities is not None
            agreement = float((decisions(model, probabilities) == reference).mean())
            max_diff = max(
                float(np.max(np.abs(p[name] - r[name])))
                for p, r in zip(probabilities, reference_probabilities, strict=True)
                for name in p
            )
        print(f"\n{config.name}: session providers {model.providers}")
        if agreement is not None:
            print(f"  vs cpu-fp32 on 256 comments: max |Δp| {max_diff:.2e}, label decisions equal {agreement:.2%}")
        rows = {}
        for size in batch_sizes:
            row = time_batches(model, encoded, size, args.seconds)
            rows[str(size)] = row
            print(
                f"  batch {size:>4}: {row['comments_per_s']:>9.0f} comments/s   "
                f"p50 {row['p50_ms']:7.2f} ms   p95 {row['p95_ms']:7.2f} ms   ({row['batches']:.0f} batches)"
            )
        results["configs"][config.name] = {  # type: ignore[index]
            "providers": model.providers,
            "max_abs_diff_vs_cpu": max_diff,
            "decision_agreement_vs_cpu": agreement,
            "batches": rows,
        }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
