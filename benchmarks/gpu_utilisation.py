"""Fraction of the GPU's peak FLOP/s that the encoder reaches, through PyTorch and through ONNX Runtime.

PyTorch: the peers' Hugging Face checkpoint (a sequence classifier) on CUDA in fp32 and fp16,
batches of real danmaku padded to the longest in each batch (what a server does), timed with CUDA
synchronisation. ONNX Runtime: the comments/s that ``benchmarks/gpu_inference.py --json`` wrote,
turned into FLOP/s with the same per-comment count.

FLOPs of one comment of n tokens (forward, multiply-add = 2): n * (2 * P + 4 * L * n * H), with P
the encoder's parameters outside the embeddings, L layers, H hidden: the linear layers plus the
attention scores and the weighted sum. Padding counts: the GPU computes it.

    python benchmarks/gpu_utilisation.py --checkpoint DIR [--ort-json gpu_inference.json] --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serving_throughput import load_texts  # noqa: E402

# Dense fp16/bf16 tensor-core peak (no sparsity), from NVIDIA's data sheets; TF32 is half of it.
PEAK_FP16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def peak_for(name: str) -> float | None:
    for key, value in PEAK_FP16_TFLOPS.items():
        if key in name:
            return value * 1e12
    return None


def padded_lengths(tokenizer: Any, texts: list[str], batch_size: int, max_length: int) -> float:
    """Mean tokens computed per comment when each batch is padded to its longest comment."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    padded = [max(lengths[start : start + batch_size]) for start in range(0, len(lengths) - batch_size + 1, batch_size)]
    return float(statistics.mean(padded)) if padded else float(max_length)


def flops_per_comment(config: Any, parameters: int, tokens: float) -> float:
    layers, hidden = int(config.num_hidden_layers), int(config.hidden_size)
    return tokens * (2 * parameters + 4 * layers * tokens * hidden)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="Hugging Face sequence-classifier directory")
    parser.add_argument("--ort-json", type=Path, help="gpu_inference.py --json output to convert to FLOP/s")
    parser.add_argument("--batch-sizes", default="64,256,1024")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per (dtype, batch size)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense fp16 peak (default: from its name)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 1
    device_name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_for(device_name)
    tokenizer = AutoTokenizer.from_pretrained(str(args.checkpoint))
    model = AutoModelForSequenceClassification.from_pretrained(str(args.checkpoint)).eval()
    encoder = model.base_model
    parameters = sum(p.numel() for p in encoder.parameters()) - sum(p.numel() for p in encoder.embeddings.parameters())
    texts, source = load_texts(20_000, seed=0)
    print(f"{device_name}; peak fp16 {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s; texts: {source}")
    print(f"encoder: {model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}, {parameters:,} params")
    results: dict[str, Any] = {"device": device_name, "peak_fp16_flops": peak, "texts": source, "torch": {}}
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    for dtype_name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        model_on = model.to("cuda", dtype=dtype)
        for size in sizes:
            batches = [texts[start : start + size] for start in range(0, min(len(texts), 50 * size) - size + 1, size)]
            encoded = [
                tokenizer(batch, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt").to(
                    "cuda"
                )
                for batch in batches
            ]
            with torch.inference_mode():
                for batch in encoded[:3]:
                    model_on(**batch)
                torch.cuda.synchronize()
                comments = tokens = 0
                started = time.perf_counter()
                index = 0
                while time.perf_counter() - started < args.seconds:
                    batch = encoded[index % len(encoded)]
                    index += 1
                    model_on(**batch)
                    comments += int(batch["input_ids"].shape[0])
                    tokens += int(batch["input_ids"].numel())
                torch.cuda.synchronize()
                elapsed = time.perf_counter() - started
            per_comment_tokens = tokens / comments
            flops = comments * flops_per_comment(model.config, parameters, per_comment_tokens) / elapsed
            row = {
                "comments_per_s": comments / elapsed,
                "padded_tokens_per_comment": per_comment_tokens,
                "tflops": flops / 1e12,
                "fraction_of_peak": flops / peak if peak else None,
            }
            results["torch"][f"{dtype_name}/{size}"] = row
            print(
                f"torch {dtype_name} batch {size:>5}: {row['comments_per_s']:>10.0f} comments/s  "
                f"{per_comment_tokens:5.1f} tokens/comment  {row['tflops']:7.1f} TFLOP/s  "
                f"{(row['fraction_of_peak'] or float('nan')):.1%} of fp16 peak"
            )
    if args.ort_json and args.ort_json.is_file():
        ort = json.loads(args.ort_json.read_text())
        # gpu_inference.py times the demo texts; their padded lengths set the FLOPs of its batches.
        from gpu_inference import demo_texts

        demo = demo_texts()
        results["onnxruntime"] = {}
        for config, entry in ort.get("configs", {}).items():
            for size, row in (entry.get("batches") or {}).items():
                padded = padded_lengths(tokenizer, demo, int(size), args.max_length)
                flops = row["comments_per_s"] * flops_per_comment(model.config, parameters, padded)
                fraction = flops / peak if peak else None
                results["onnxruntime"][f"{config}/{size}"] = {"tflops": flops / 1e12, "fraction_of_peak": fraction}
                print(
                    f"onnxruntime {config} batch {size:>5}: {row['comments_per_s']:>10.0f} comments/s  "
                    f"{padded:5.1f} tokens/comment  {flops / 1e12:7.1f} TFLOP/s  "
                    f"{(fraction or float('nan')):.1%} of peak"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
