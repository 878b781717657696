"""``danmaku-serve classify-file``: classify stored comments offline with the service's router (one shard).

Exit status: 0 done; 2 bad arguments, settings, bundle or input (retrying cannot help: the Indexed Job fails the
index at once); 1 anything else (worth a retry, which resumes).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

JOB_INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes on every pod of an Indexed Job


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "classify-file",
        help="classify a Parquet/CSV/JSONL file (or a folder of them) offline; resumable, shardable",
        description="Classify the comments of --input with the same bundles and routing as the service and write "
        "Parquet parts under --output. Routing and batching settings are the service's DANMAKU_* variables. "
        "See docs/bulk.md.",
    )
    parser.add_argument("--input", type=Path, required=True, help="a .parquet/.csv(.gz)/.jsonl(.gz) file or a folder")
    parser.add_argument("--output", type=Path, required=True, help="output folder (parts, _run.json, _manifests/)")
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="folder with the emotion/ and information/ bundles (or one joint emotion/ bundle)",
    )
    parser.add_argument("--text-column", default="text", help="column (or JSON key) holding the comment (text)")
    parser.add_argument("--id-column", help="column holding an id to copy to the output (default: none)")
    parser.add_argument("--mode", choices=["precision", "recall"], help="default: DANMAKU_DEFAULT_MODE")
    parser.add_argument(
        "--information-threshold", type=float, help="overrides the mode's threshold, in [0, 1] (as the API's)"
    )
    parser.add_argument(
        "--batch-size", type=int, help="comments per forward pass (default: DANMAKU_MAX_BATCH_SIZE, i.e. 32)"
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=10_000, help="input rows per output part, the unit of resume (10000)"
    )
    parser.add_argument(
        "--shard-index",
        help=f"this shard, 0..num-shards-1 (default: ${JOB_INDEX_ENV}, set by an Indexed Job; else 0)",
    )
    parser.add_argument("--num-shards", type=int, default=1, help="shards the input is split into (1)")
    parser.add_argument(
        "--on-bad-rows",
        choices=["fail", "skip"],
        default="fail",
        help="a row that cannot be read (invalid UTF-8, bad JSON, wrong type): fail (default) stops naming its line; "
        "skip writes it to <output>/_rejects/ with its line number and counts it (null label in the output)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info")
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"danmaku-serve classify-file: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from service.bulk.inputs import InputError, discover_inputs
    from service.bulk.output import RunMismatch
    from service.bulk.runner import BulkOptions, bulk_settings, planned_rows, run_shard
    from service.bulk.shards import ShardError, check_shard
    from service.bundle import BundleError
    from service.model import ProviderUnavailable
    from service.runtime import Runtime
    from service.settings import SettingsError, load_settings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raw_index = args.shard_index if args.shard_index is not None else os.environ.get(JOB_INDEX_ENV, "0")
    try:
        shard_index = int(raw_index)
    except ValueError:
        return _fail(f"--shard-index / ${JOB_INDEX_ENV} must be an integer, got {raw_index!r}")
    if args.input.is_dir() and args.output.resolve().is_relative_to(args.input.resolve()):
        # its parts would be read as input by the next run
        return _fail(f"--output {args.output} is inside --input {args.input}; put it elsewhere")
    if args.chunk_rows < 1:
        return _fail(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    if args.information_threshold is not None and not 0.0 <= args.information_threshold <= 1.0:
        return _fail(f"--information-threshold must be in [0, 1], got {args.information_threshold}")
    overrides: dict[str, Any] = {"log_level": args.log_level}
    if args.models_dir is not None:
        overrides["models_dir"] = args.models_dir
    if args.batch_size is not None:
        overrides["max_batch_size"] = args.batch_size
    try:
        check_shard(shard_index, args.num_shards)
        settings, comments_per_call = bulk_settings(load_settings(**overrides))
        inputs = discover_inputs(args.input)
        runtime = Runtime.load(settings)
    except (ShardError, SettingsError, InputError) as exc:
        return _fail(str(exc))
    except (BundleError, ProviderUnavailable) as exc:
        return _fail(f"cannot load the models: {exc}")

    options = BulkOptions(
        shard_index=shard_index,
        num_shards=args.num_shards,
        text_column=args.text_column,
        id_column=args.id_column,
        chunk_rows=args.chunk_rows,
        mode=args.mode,
        information_threshold=args.information_threshold,
        comments_per_call=comments_per_call,
        on_bad_rows=args.on_bad_rows,
    )

    async def classify() -> Any:
        runtime.start()
        try:
            with tqdm(
                total=planned_rows(inputs, options),
                unit=" comments",
                desc=f"shard {shard_index}/{args.num_shards}",
                disable=args.no_progress,
                # In a pod's log (no terminal) every refresh is a line: one a minute is enough.
                mininterval=1.0 if sys.stderr.isatty() else 60.0,
            ) as progress:
                return await run_shard(runtime.router, inputs, args.output, options, progress=progress)
        finally:
            await runtime.stop()

    try:
        manifest = asyncio.run(classify())
    except (InputError, RunMismatch) as exc:
        return _fail(str(exc))
    labels = ", ".join(f"{label} {count}" for label, count in manifest.label_counts.items())
    print(
        f"shard {shard_index} of {args.num_shards}: {manifest.rows} rows ({manifest.empty_texts} with no text, "
        f"{manifest.rejected_rows} bad rows skipped to {args.output / '_rejects'}) in "
        f"{len(manifest.parts)} parts ({manifest.resumed_parts} kept from an earlier run, {manifest.written_parts} "
        f"written) in {manifest.elapsed_s:.1f} s; labels: {labels or 'none'}"
    )
    return 0
