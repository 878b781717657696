"""Our service against the servers a user would pick instead, side by side in one run.

One server at a time on 127.0.0.1, each with the same thread budget (``--threads``, default: all
cores) and the same real danmaku; for each, closed-loop HTTP clients run every scenario
(``CLIENTS x COMMENTS`` per request, default 16x8, 64x1, 4x64) for ``--duration`` seconds after
``--warmup``. Printed: comments/s, latency p50/p95/p99 and errors per (server, scenario), then the
ratio ours/peer in comments/s, all from this one run.

Servers (same encoder size: a random-weight encoder with multilingual-e5-small's shape,
12 layers, hidden 384, FFN 1536, 12 heads, unless --hidden-size/--layers say otherwise):

- ours fp32: ``danmaku-serve`` with two bundles (emotion on every comment, information on the
  comments routed to it; or one joint emotion bundle, when the models dir holds one, e.g. a kept
  ``--workdir``), ONNX Runtime, dynamic micro-batching. Extra rows: ``--int8`` (the int8
  variants) and ``--batching-off`` (max batch size 1).
- Infinity (``infinity-emb``, torch engine; ``--infinity-optimum`` adds its ONNX engine): one
  sequence-classification checkpoint, ``/classify``.
- FastAPI + transformers ``pipeline("text-classification", batch_size=64)``
  (benchmarks/peers/pipeline_server.py): the same checkpoint.

The peers are an optional install (``pip install -e '.[bench]'``, best in a separate virtual
environment: ``--peer-python /path/to/venv/bin/python``); a peer whose package is missing is
skipped with the reason printed.

    python benchmarks/compare_servers.py --duration 5 --warmup 2                # quick look
    python benchmarks/compare_servers.py --peer-python /work/bench-venv/bin/python --int8 --batching-off

Needs the ``train`` extra here (torch + transformers build the checkpoint and the bundles).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import serving_throughput  # noqa: E402
from serving_throughput import free_port, load_texts, percentile  # noqa: E402

# ../shared/data beside the checkout; from a worktree under <root>/wt/NAME, <root>/shared/data.
for _root in () if os.environ.get("DANMAKU_BENCH_CSV") else (REPO.parent, REPO.parent.parent):
    _csv = _root / "shared" / "data" / "danmaku" / "dd_center_vtuber.csv.gz"
    if _csv.is_file():
        serving_throughput.DANMAKU_CSV = _csv
        break

Body = Callable[[list[str]], dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    clients: int
    comments: int

    @property
    def name(self) -> str:
        return f"{self.clients}x{self.comments}"


@dataclass
class Server:
    """How to start one server, ask whether it is ready, and phrase a request to it."""

    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    classify_path: str
    body: Body
    skip_reason: str | None = None
    cwd: Path = REPO


@dataclass
class Measurement:
    comments_per_s: float
    latencies_ms: list[float]
    errors: int


@dataclass
class ServerResult:
    server: str
    note: str = ""
    load_before: str = ""
    load_after: str = ""
    by_scenario: dict[str, Measurement] = field(default_factory=dict)


# ---------------------------------------------------------------- models


def build_models(
    directory: Path,
    texts: list[str],
    *,
    hidden_size: int,
    layers: int,
    int8: bool,
    heads: int = 12,
    onnx_checkpoint: bool = False,
) -> tuple[Path, Path]:
    """Random-weight encoder -> our two bundles (+ int8 variants) and one HF sequence classifier.

    Every server runs the same encoder shape and the same tokenizer (a character vocabulary over
    the benchmark texts, so no comment is all [UNK]).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from service.bundle import Head
    from training.encoders.tiny import build_tiny_encoder
    from training.export.onnx_bundle import BundleSpec, export_bundle
    from training.modeling.classifiers import InformationClassifier, MultiHeadClassifier, load_encoder
    from training.taxonomy import MAIN_LABELS, SUB_LABELS

    encoder = build_tiny_encoder(
        directory / "encoder",
        corpus=texts,
        hidden_size=hidden_size,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=hidden_size * 4,
        max_positions=512,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(encoder))
    parity = texts[:16]
    models = directory / "models"
    torch.manual_seed(0)
    emotion = MultiHeadClassifier(load_encoder(str(encoder)), num_main=len(MAIN_LABELS), num_sub=len(SUB_LABELS))
    information = InformationClassifier(load_encoder(str(encoder)), num_features=5)
    exported = []
    for model, spec in (
        (
            emotion,
            BundleSpec(
                name="emotion",
                task="emotion",
                version="bench",
                base_encoder="random",
                heads=[
                    Head(name="main", output="main_logits", labels=list(MAIN_LABELS)),
                    Head(name="sub", output="sub_logits", labels=list(SUB_LABELS)),
                ],
                max_sequence_length=64,
            ),
        ),
        (
            information,
            BundleSpec(
                name="information",
                task="information",
                version="bench",
                base_encoder="random",
                heads=[Head(name="information", output="information_logits", labels=["information"])],
                max_sequence_length=64,
            ),
        ),
    ):
        exported.append((model, export_bundle(model, tokenizer, spec, models / spec.name, parity_texts=parity)))
    if int8:
        from training.export.variants import write_variant

        for model, bundle in exported:
            write_variant(
                bundle,
                "int8",
                models / f"{bundle.metadata.name}-int8",
                model=model,
                tokenizer=tokenizer,
                parity_texts=parity,
            )
    checkpoint = directory / "hf-classifier"
    classifier = AutoModelForSequenceClassification.from_pretrained(
        str(encoder),
        num_labels=len(MAIN_LABELS),
        id2label=dict(enumerate(MAIN_LABELS)),
        label2id={label: index for index, label in enumerate(MAIN_LABELS)},
    )
    classifier.save_pretrained(str(checkpoint))
    tokenizer.save_pretrained(str(checkpoint))
    # Readable by the peers' older transformers (Infinity pins 4.x, which lacks transformers 5's
    # "TokenizersBackend"), and every server truncates at the same 64 tokens as our bundles.
    config_path = checkpoint / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(tokenizer_class="PreTrainedTokenizerFast", model_max_length=64)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    if onnx_checkpoint:
        try:
            export_classifier_onnx(classifier, tokenizer, checkpoint, parity)
        except Exception as exc:  # only Infinity's optimum row needs it; that row then reports the failure
            print(f"ONNX export of the peers' checkpoint failed: {type(exc).__name__}: {exc}", flush=True)
    return models, checkpoint


def export_classifier_onnx(classifier: Any, tokenizer: Any, checkpoint: Path, texts: list[str]) -> Path:
    """The checkpoint plus its ``model.onnx`` (output ``logits``): what Infinity's optimum engine loads."""
    import torch

    from training.export.onnx_bundle import _export_onnx

    class Logits(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**inputs).logits

    target = checkpoint.with_name(checkpoint.name + "-onnx")
    shutil.copytree(checkpoint, target, dirs_exist_ok=True)
    example = dict(tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt"))
    _export_onnx(Logits(classifier.eval()), example, target / "model.onnx", ["logits"])
    return target


# ---------------------------------------------------------------- servers


def thread_env(threads: int) -> dict[str, str]:
    value = str(threads)
    return {"OMP_NUM_THREADS": value, "MKL_NUM_THREADS": value, "TOKENIZERS_PARALLELISM": "false"}


def peer_missing(python: str, *packages: str) -> str | None:
    """None when every package is installed for ``python``, else which are not.

    ``find_spec`` on top-level names: it imports nothing (importing torch takes a minute on a busy
    2-core machine); a package that is installed but broken shows up as the server failing to start,
    with its log's last lines.
    """
    probe = (
        "import importlib.util, sys; "
        f"missing = [name for name in {list(packages)!r} if importlib.util.find_spec(name) is None]; "
        "print(' '.join(missing)); sys.exit(1 if missing else 0)"
    )
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python}: {exc}"
    if done.returncode == 0:
        return None
    missing = done.stdout.strip() or done.stderr.strip()[-200:]
    return f"not installed for {python}: {missing} (install the `bench` extra, see docs/PERFORMANCE.md)"


def our_models(models: Path) -> str:
    """What our rows serve: two bundles, or one joint emotion bundle (its information head decides, no
    information bundle is loaded; see service/runtime.py)."""
    from service.bundle import carries_information_head, read_metadata

    return "one joint model" if carries_information_head(read_metadata(models / "emotion")) else "two models"


def servers(args: argparse.Namespace, models: Path, checkpoint: Path) -> list[Server]:
    threads = str(args.threads)
    shape = our_models(models)

    def ours(name: str, extra: dict[str, str]) -> Server:
        return Server(
            name=name,
            command=[sys.executable, "-m", "service.cli", "--models-dir", str(models), "--host", "127.0.0.1"],
            env={
                **thread_env(args.threads),
                "DANMAKU_INTRA_OP_THREADS": threads,
                "DANMAKU_LOG_LEVEL": "warning",
                **extra,
            },
            ready_path="/readyz",
            classify_path="/classify",
            body=lambda texts: {"comments": [{"text": text} for text in texts]},
        )

    listed = [ours(f"ours fp32 ({shape})", {})]
    if args.batching_off:
        listed.append(ours("ours, batching off", {"DANMAKU_MAX_BATCH_SIZE": "1", "DANMAKU_MAX_WAIT_MS": "0"}))
    if args.int8:
        listed.append(
            ours(
                f"ours int8 ({shape})",
                # DANMAKU_INFORMATION_BUNDLE is ignored (not loaded) when emotion-int8 is a joint bundle
                {"DANMAKU_EMOTION_BUNDLE": "emotion-int8", "DANMAKU_INFORMATION_BUNDLE": "information-int8"},
            )
        )

    python = args.peer_python
    infinity_missing = peer_missing(python, "infinity_emb", "torch", "fastapi", "uvicorn")
    engines = ["torch", "optimum"] if args.infinity_optimum else ["torch"]
    for engine in engines:
        missing = infinity_missing or (peer_missing(python, "optimum", "onnxruntime") if engine == "optimum" else None)
        listed.append(
            Server(
                name=f"Infinity ({engine} engine, one model)",
                command=[
                    python,
                    "-m",
                    "infinity_emb.cli",
                    "v2",
                    "--model-id",
                    # optimum: "." from inside the directory. Infinity 0.0.78 hands optimum the .onnx path
                    # it globbed; optimum 2.x wants it relative to the model directory.
                    "." if engine == "optimum" else str(checkpoint),
                    "--served-model-name",
                    "danmaku",
                    "--engine",
                    engine,
                    "--device",
                    "cpu",
                    "--batch-size",
                    str(args.peer_batch_size),
                    "--host",
                    "127.0.0.1",
                    "--no-model-warmup",
                    "--log-level",
                    "warning",
                ],
                env={**thread_env(args.threads), "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"},
                ready_path="/health",
                classify_path="/classify",
                body=lambda texts: {"model": "danmaku", "input": texts},
                skip_reason=missing,
                cwd=checkpoint.with_name(checkpoint.name + "-onnx") if engine == "optimum" else REPO,
            )
        )
    listed.append(
        Server(
            name=f"FastAPI + pipeline(batch_size={args.peer_batch_size}), one model",
            command=[
                python,
                str(HERE / "peers" / "pipeline_server.py"),
                "--model",
                str(checkpoint),
                "--threads",
                threads,
                "--batch-size",
                str(args.peer_batch_size),
            ],
            env=thread_env(args.threads),
            ready_path="/health",
            classify_path="/classify",
            body=lambda texts: {"texts": texts},
            skip_reason=peer_missing(python, "transformers", "torch", "fastapi", "uvicorn"),
        )
    )
    return listed


async def wait_ready(base: str, path: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode} before it was ready")
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"not ready after {timeout_s:g} s")


async def drive(
    base: str, server: Server, scenario: Scenario, texts: list[str], args: argparse.Namespace
) -> Measurement:
    """Closed loop: each client sends its next request when the previous one has answered."""
    latencies: list[float] = []
    counts = {"comments": 0, "errors": 0}
    state = {"measuring": False, "stop": False}

    async def client_loop(client: httpx.AsyncClient, number: int) -> None:
        offset = number * 7919
        sent = 0
        while not state["stop"]:
            batch = [texts[(offset + sent + index) % len(texts)] for index in range(scenario.comments)]
            sent += scenario.comments
            started = time.perf_counter()
            try:
                response = await client.post(server.classify_path, json=server.body(batch))
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            elapsed_ms = (time.perf_counter() - started) * 1000
            if state["measuring"]:
                if ok:
                    latencies.append(elapsed_ms)
                    counts["comments"] += len(batch)
                else:
                    counts["errors"] += 1
            if not ok:
                await asyncio.sleep(0.05)  # a failing server must not turn this into a busy loop

    # One client, one keep-alive connection per closed-loop client: building an httpx client per
    # loop costs an SSL context each, seconds of CPU on a busy 2-core machine.
    limits = httpx.Limits(max_connections=scenario.clients, max_keepalive_connections=scenario.clients)
    client = httpx.AsyncClient(base_url=base, timeout=args.request_timeout, limits=limits)
    tasks = [asyncio.create_task(client_loop(client, number)) for number in range(scenario.clients)]
    await asyncio.sleep(args.warmup)
    state["measuring"] = True
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    state["measuring"] = False
    measured = time.perf_counter() - started
    state["stop"] = True
    # In-flight requests finish (bounded by request_timeout); their results are not counted.
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.request_timeout + 5)
    finally:
        await client.aclose()
    return Measurement(counts["comments"] / measured, latencies, counts["errors"])


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


async def measure(
    base: str,
    server: Server,
    process: subprocess.Popen[bytes],
    scenarios: list[Scenario],
    texts: list[str],
    args: argparse.Namespace,
    result: ServerResult,
) -> None:
    await wait_ready(base, server.ready_path, process, args.start_timeout)
    result.load_before = load_average()
    for scenario in scenarios:
        result.by_scenario[scenario.name] = await drive(base, server, scenario, texts, args)
    result.load_after = load_average()


def run_server(
    server: Server, scenarios: list[Scenario], texts: list[str], args: argparse.Namespace, log_path: Path
) -> ServerResult:
    result = ServerResult(server.name)
    if server.skip_reason:
        result.note = f"skipped: {server.skip_reason}"
        return result
    port = free_port()
    command = [*server.command, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["nice", "-n", str(args.nice), *command] if args.nice else command,
            env={**os.environ, **server.env},
            cwd=server.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers too
        )
        try:
            asyncio.run(measure(f"http://127.0.0.1:{port}", server, process, scenarios, texts, args, result))
        except Exception as exc:  # a peer that cannot start or dies is reported, not fatal
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            result.note = f"failed: {type(exc).__name__}: {exc}; log: {' | '.join(tail)[-400:]}"
        finally:
            stop(process)
    return result


def stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------- report


def print_report(results: list[ServerResult], scenarios: list[Scenario], args: argparse.Namespace, note: str) -> None:
    print(f"\n{note}")
    print(
        f"threads per server: {args.threads}; CPU cores: {os.cpu_count()}; {args.duration:g} s measured after "
        f"{args.warmup:g} s warm-up per scenario; closed-loop clients; one server at a time\n"
    )
    width = max(len(result.server) for result in results) + 2
    header = f"{'server':<{width}}{'scenario':>9}{'comments/s':>12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for result in results:
        print_rows(result, scenarios, width)

    ours = next((result for result in results if result.server.startswith("ours fp32")), None)
    peers = [result for result in results if result is not ours and result.by_scenario]
    if ours is None or not ours.by_scenario or not peers:
        return
    print(f"\nratio {ours.server} / server, comments/s, same run:")
    print(f"{'server':<{width}}" + "".join(f"{scenario.name:>9}" for scenario in scenarios))
    for peer in peers:
        cells = []
        for scenario in scenarios:
            mine, theirs = ours.by_scenario.get(scenario.name), peer.by_scenario.get(scenario.name)
            ok = mine and theirs and theirs.comments_per_s > 0
            cells.append(f"{mine.comments_per_s / theirs.comments_per_s:>8.2f}x" if ok else f"{'-':>9}")  # type: ignore[union-attr]
        print(f"{peer.server:<{width}}" + "".join(cells))


def print_rows(result: ServerResult, scenarios: list[Scenario], width: int) -> None:
    if result.note and not result.by_scenario:
        print(f"{result.server:<{width}}  {result.note}", flush=True)
        return
    for scenario in scenarios:
        row = result.by_scenario.get(scenario.name)
        if row is None:
            continue
        print(
            f"{result.server:<{width}}{scenario.name:>9}{row.comments_per_s:>12.1f}"
            f"{percentile(row.latencies_ms, 50):>9.1f}{percentile(row.latencies_ms, 95):>9.1f}"
            f"{percentile(row.latencies_ms, 99):>9.1f}{row.errors:>8d}"
        )
    print(f"{'':<{width}}  load average before / after: {result.load_before} / {result.load_after}")
    if result.note:
        print(f"{'':<{width}}  {result.note}")
    sys.stdout.flush()


def parse_scenarios(text: str) -> list[Scenario]:
    scenarios = []
    for item in text.split(","):
        clients, _, comments = item.strip().partition("x")
        scenarios.append(Scenario(int(clients), int(comments)))
    return scenarios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="16x8,64x1,4x64", help="CLIENTSxCOMMENTS, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per scenario (default 30)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="thread budget of each server")
    parser.add_argument("--hidden-size", type=int, default=384, help="encoder width (default 384: e5-small)")
    parser.add_argument("--layers", type=int, default=12, help="encoder depth (default 12: e5-small)")
    parser.add_argument("--texts", type=int, default=5000, help="real danmaku to cycle through (default 5000)")
    parser.add_argument("--peer-python", default=sys.executable, help="python with the `bench` extra (peers)")
    parser.add_argument("--peer-batch-size", type=int, default=64, help="peers' batch size (default 64)")
    parser.add_argument("--int8", action="store_true", help="add our int8 variants as a row")
    parser.add_argument("--batching-off", action="store_true", help="add ours with max batch size 1 as a row")
    parser.add_argument("--infinity-optimum", action="store_true", help="also try Infinity's optimum (ONNX) engine")
    parser.add_argument("--only", default="", help="comma-separated substrings: run only servers whose name matches")
    parser.add_argument("--nice", type=int, default=0, help="start servers under `nice -n N` (default 0)")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds a server may take to be ready")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds one request may take")
    parser.add_argument("--workdir", type=Path, help="keep models and server logs here (default: a temp dir)")
    args = parser.parse_args()

    scenarios = parse_scenarios(args.scenarios)
    texts, source = load_texts(args.texts, seed=0)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="compare-servers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        started = time.perf_counter()
        # A kept --workdir is reused when it was built for the same shape and texts (development runs).
        shape = (
            f"hidden {args.hidden_size} layers {args.layers} texts {source} int8 {args.int8} {args.infinity_optimum}"
        )
        marker = workdir / "built.txt"
        if marker.is_file() and marker.read_text() == shape:
            models, checkpoint = workdir / "models", workdir / "hf-classifier"
            print(f"reusing bundles and checkpoint under {workdir}", flush=True)
        else:
            models, checkpoint = build_models(
                workdir,
                texts,
                hidden_size=args.hidden_size,
                layers=args.layers,
                int8=args.int8,
                onnx_checkpoint=args.infinity_optimum,
            )
            marker.write_text(shape)
            print(f"built bundles and checkpoint in {time.perf_counter() - started:.0f} s under {workdir}", flush=True)
        wanted = [part for part in args.only.split(",") if part]
        results: list[ServerResult] = []
        for server in servers(args, models, checkpoint):
            if wanted and not any(part.lower() in server.name.lower() for part in wanted):
                continue
            print(f"running {server.name} ...", flush=True)
            log_path = logs / f"{len(results)}-{server.name.split()[0].lower()}.log"
            results.append(run_server(server, scenarios, texts, args, log_path))
            print_rows(results[-1], scenarios, width=48)  # as it comes: a long run shows its figures early
        note = (
            f"encoder: random weights, hidden {args.hidden_size}, {args.layers} layers, FFN {args.hidden_size * 4}; "
            f"texts: {source}"
        )
        print_report(results, scenarios, args, note)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
