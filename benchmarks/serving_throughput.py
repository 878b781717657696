"""Serving throughput: the dynamic micro-batcher vs batch size 1, side by side, on real uvicorn.

For each configuration the script starts ``danmaku-serve`` on 127.0.0.1 (a subprocess), lets
``--clients`` closed-loop HTTP clients send ``--comments-per-request`` comments per request for
``--duration`` seconds, and prints comments/s, requests/s, latency percentiles and the mean batch
size the service reports in /metrics. Texts: real danmaku from ../shared/data when present,
generated ones otherwise.

    python benchmarks/serving_throughput.py                          # random-weight encoder, CPU
    python benchmarks/serving_throughput.py --models-dir models      # your trained bundles
                                                   # (emotion + information, or one joint emotion bundle)
    python benchmarks/serving_throughput.py --models-dir models \
        --compare runs/real/e3/models:emotion-int8 runs/real/e1/models:emotion-int8:information-int8
        # side by side, all with the micro-batcher: the baseline, then each DIR[:EMOTION[:INFORMATION]]
        # (bundle directory names under DIR); ratios are to the baseline, measured in the same run

Without --models-dir it exports two random-weight bundles (needs the ``train`` extra) with an
encoder of --hidden-size/--layers: the network classifies nothing but costs what its size costs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
# DANMAKU_BENCH_CSV: a sample of that file (columns: text) where ../shared/data does not travel (a GPU box).
DANMAKU_CSV = Path(
    os.environ.get("DANMAKU_BENCH_CSV") or REPO.parent / "shared" / "data" / "danmaku" / "dd_center_vtuber.csv.gz"
)


@dataclass
class Result:
    name: str
    comments_per_s: float
    requests_per_s: float
    latencies_ms: list[float]
    mean_batch: float
    errors: int


def load_texts(limit: int, seed: int) -> tuple[list[str], str]:
    if DANMAKU_CSV.is_file():
        texts: list[str] = []
        with gzip.open(DANMAKU_CSV, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                text = (row.get("text") or "").strip()
                if text:
                    texts.append(text[:200])
                if len(texts) >= limit:
                    break
        return texts, f"{len(texts)} real danmaku from {DANMAKU_CSV.name}"
    rng = random.Random(seed)
    alphabet = "哈草啊吧呢前方高能打卡泪目好听awsl2333？！这是谁的歌"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 30))) for _ in range(limit)]
    return texts, f"{limit} generated texts (shared data absent)"


def build_bundles(directory: Path, *, hidden_size: int, layers: int, max_length: int) -> Path:
    """Two random-weight bundles through the real export path (imports torch: train extra)."""
    import torch
    from transformers import AutoTokenizer

    from service.bundle import Head
    from training.encoders.tiny import build_tiny_encoder
    from training.export.onnx_bundle import BundleSpec, export_bundle
    from training.modeling.classifiers import InformationClassifier, MultiHeadClassifier, load_encoder
    from training.taxonomy import MAIN_LABELS, SUB_LABELS

    corpus = ["前方高能！！", "这首曲子的作者是谁？", "awsl", "2333333 打卡", "哈哈哈哈哈哈"]
    encoder = build_tiny_encoder(
        directory / "encoder", corpus=corpus, hidden_size=hidden_size, num_layers=layers, num_heads=4
    )
    tokenizer = AutoTokenizer.from_pretrained(str(encoder))
    models = directory / "models"
    torch.manual_seed(0)
    export_bundle(
        MultiHeadClassifier(load_encoder(str(encoder)), num_main=len(MAIN_LABELS), num_sub=len(SUB_LABELS)),
        tokenizer,
        BundleSpec(
            name="emotion",
            task="emotion",
            version="bench",
            base_encoder="random",
            heads=[
                Head(name="main", output="main_logits", labels=list(MAIN_LABELS)),
                Head(name="sub", output="sub_logits", labels=list(SUB_LABELS)),
            ],
            max_sequence_length=max_length,
        ),
        models / "emotion",
        parity_texts=corpus,
    )
    export_bundle(
        InformationClassifier(load_encoder(str(encoder)), num_features=5),
        tokenizer,
        BundleSpec(
            name="information",
            task="information",
            version="bench",
            base_encoder="random",
            heads=[Head(name="information", output="information_logits", labels=["information"])],
            max_sequence_length=max_length,
        ),
        models / "information",
        parity_texts=corpus,
    )
    return models


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(600):
            if server.poll() is not None:
                raise RuntimeError(f"server exited with {server.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server not ready after 60 s")


async def drive(base: str, texts: list[str], args: argparse.Namespace) -> tuple[list[float], int, int, int]:
    """Closed-loop clients; returns (latencies ms, requests, comments, errors) of the measured window."""
    latencies: list[float] = []
    counts = {"requests": 0, "comments": 0, "errors": 0}
    measuring = False
    stop = False

    async def client_loop(number: int) -> None:
        rng = random.Random(number)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            while not stop:
                comments = [{"text": rng.choice(texts)} for _ in range(args.comments_per_request)]
                started = time.perf_counter()
                response = await client.post("/classify", json={"comments": comments})
                elapsed = (time.perf_counter() - started) * 1000
                if measuring:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                        counts["requests"] += 1
                        counts["comments"] += len(comments)
                    else:
                        counts["errors"] += 1

    tasks = [asyncio.create_task(client_loop(number)) for number in range(args.clients)]
    await asyncio.sleep(args.warmup)
    measuring = True
    await asyncio.sleep(args.duration)
    measuring = False
    stop = True
    await asyncio.gather(*tasks)
    return latencies, counts["requests"], counts["comments"], counts["errors"]


def mean_batch_size(metrics: str, emotion_bundle: str | None = None) -> float:
    """Mean batch size of the emotion model (it sees every comment), whatever its bundle is named."""
    model = re.escape(emotion_bundle or os.environ.get("DANMAKU_EMOTION_BUNDLE", "emotion"))
    total = re.search(rf'danmaku_batch_size_comments_sum\{{model="{model}"\}} ([0-9.e+]+)', metrics)
    count = re.search(rf'danmaku_batch_size_comments_count\{{model="{model}"\}} ([0-9.e+]+)', metrics)
    if not total or not count or float(count.group(1)) == 0:
        return float("nan")
    return float(total.group(1)) / float(count.group(1))


def start_server(port: int, models: Path, env_overrides: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **env_overrides, "DANMAKU_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "service.cli", "--port", str(port), "--models-dir", str(models)]
    return subprocess.Popen(command, env=env, cwd=REPO)


def bundle_env(spec: str) -> dict[str, str]:
    """``DIR[:EMOTION[:INFORMATION]]`` -> the service settings naming those bundle directories."""
    parts = spec.split(":")
    names = {
        "DANMAKU_EMOTION_BUNDLE": parts[1] if len(parts) > 1 else "",
        "DANMAKU_INFORMATION_BUNDLE": parts[2] if len(parts) > 2 else "",
    }
    return {key: value for key, value in names.items() if value}


async def run_config(
    name: str, env_overrides: dict[str, str], models: Path, texts: list[str], args: argparse.Namespace
) -> Result:
    port = free_port()
    server = start_server(port, models, {**env_overrides, "DANMAKU_INTRA_OP_THREADS": str(args.threads)})
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, server)
        latencies, requests, comments, errors = await drive(base, texts, args)
        async with httpx.AsyncClient(base_url=base) as client:
            metrics = (await client.get("/metrics")).text
    finally:
        server.terminate()
        server.wait(timeout=60)
    return Result(
        name,
        comments / args.duration,
        requests / args.duration,
        latencies,
        mean_batch_size(metrics, env_overrides.get("DANMAKU_EMOTION_BUNDLE")),
        errors,
    )


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, help="bundles to serve (default: export random-weight ones)")
    parser.add_argument("--hidden-size", type=int, default=256, help="random encoder width (default 256)")
    parser.add_argument("--layers", type=int, default=4, help="random encoder depth (default 4)")
    parser.add_argument("--max-length", type=int, default=64, help="random bundles' max tokens (default 64)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent closed-loop clients (default 32)")
    parser.add_argument("--comments-per-request", type=int, default=1, help="(default 1: live-stream traffic)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--max-batch-size", type=int, default=32, help="micro-batcher batch size (default 32)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="micro-batcher max wait (default 5)")
    parser.add_argument("--threads", type=int, default=0, help="DANMAKU_INTRA_OP_THREADS (0: ORT default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare",
        nargs="+",
        default=[],
        metavar="DIR[:EMOTION[:INFORMATION]]",
        help="other served bundles to measure in the same run beside --models-dir (micro-batcher only)",
    )
    args = parser.parse_args()
    if args.compare and args.models_dir is None:
        parser.error("--compare needs --models-dir (the baseline)")

    texts, source = load_texts(20_000, args.seed)
    with tempfile.TemporaryDirectory(prefix="danmaku-bench-") as scratch:
        if args.models_dir is not None:
            models, model_note = args.models_dir, f"bundles from {args.models_dir}"
        else:
            models = build_bundles(
                Path(scratch), hidden_size=args.hidden_size, layers=args.layers, max_length=args.max_length
            )
            model_note = (
                f"random-weight BERT, hidden {args.hidden_size}, {args.layers} layers, max {args.max_length} tokens"
            )
        configs = [
            ("batch size 1", {"DANMAKU_MAX_BATCH_SIZE": "1", "DANMAKU_MAX_WAIT_MS": "0"}),
            (
                f"micro-batcher ({args.max_batch_size}, {args.max_wait_ms:g} ms)",
                {"DANMAKU_MAX_BATCH_SIZE": str(args.max_batch_size), "DANMAKU_MAX_WAIT_MS": str(args.max_wait_ms)},
            ),
        ]
        served = [(name, env, models) for name, env in configs]
        if args.compare:
            batching = configs[1][1]
            served = [(f"{models}", batching, models)] + [
                (spec, {**batching, **bundle_env(spec)}, Path(spec.split(":")[0])) for spec in args.compare
            ]
        results = [asyncio.run(run_config(name, env, where, texts, args)) for name, env, where in served]

    print(f"\nmodels: {model_note}; texts: {source}")
    print(
        f"load: {args.clients} closed-loop clients x {args.comments_per_request} comment(s)/request, "
        f"{args.duration:g} s measured after {args.warmup:g} s warm-up; CPU cores: {os.cpu_count()}\n"
    )
    header = (
        f"{'configuration':<28} {'comments/s':>11} {'requests/s':>11} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'mean batch':>11} {'errors':>7} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        print(
            f"{result.name:<28} {result.comments_per_s:>11.1f} {result.requests_per_s:>11.1f} "
            f"{percentile(result.latencies_ms, 50):>8.1f} {percentile(result.latencies_ms, 90):>8.1f} "
            f"{percentile(result.latencies_ms, 99):>8.1f} {result.mean_batch:>11.2f} {result.errors:>7d} "
            f"{result.comments_per_s / max(results[0].comments_per_s, 1e-9):>5.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
