"""``danmaku-train tiny-encoder DIR``: a tiny random BERT + tokenizer for smoke runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tiny-encoder",
        help="write a tiny random-weight BERT encoder directory (smoke tests; classifies nothing)",
    )
    parser.add_argument("directory", type=Path, help="output directory (Hugging Face layout)")
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from training.encoders.tiny import build_tiny_encoder

    path = build_tiny_encoder(args.directory, hidden_size=args.hidden_size, num_layers=args.layers, seed=args.seed)
    print(f"tiny encoder written to {path}")
    return 0
