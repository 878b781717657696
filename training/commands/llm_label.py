"""``danmaku-train llm-label TEXTS --out OUT --base-url URL --model NAME``: LLM pseudo-labels with resume."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.llm.client import RESPONSE_FORMATS


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "llm-label",
        help="label unique texts with an LLM behind an OpenAI-compatible endpoint (resumable)",
        description="Sends the texts in batches to POST {base-url}/chat/completions and writes the labelled-text "
        "table. Finished labels are appended to a checkpoint (default OUT.checkpoint.jsonl); running the same "
        "command again after a crash resumes. See docs/llm-labelling.md.",
    )
    parser.add_argument(
        "texts",
        type=Path,
        help="texts table: ingest's texts.parquet, or .jsonl/.csv with a text column",
    )
    parser.add_argument("--out", type=Path, required=True, help="labelled-text table to write (.parquet or .jsonl)")
    parser.add_argument("--base-url", required=True, help="endpoint base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="model name the endpoint serves")
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key, if any"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: OUT with .checkpoint.jsonl")
    parser.add_argument("--report", type=Path, default=None, help="JSON report (default: OUT with .report.json)")
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--limit", type=int, default=None, help="label only the first N texts")
    parser.add_argument("--sample", type=int, default=None, help="label a seeded random sample of N texts")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument("--batch-size", type=int, default=50, help="comments per request (reference: 50)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--max-attempts", type=int, default=2, help="failed sends of a batch before it is split")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--max-retries", type=int, default=4, help="retries of a request on transient errors")
    parser.add_argument("--backoff", type=float, default=1.0, help="base seconds of the exponential backoff")
    parser.add_argument("--max-tokens", type=int, default=4096, help="completion token limit per request")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument(
        "--response-format",
        choices=RESPONSE_FORMATS,
        default="json_schema",
        help="structured output to ask for first; falls back on a 400 that rejects it",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name.rsplit(".", 1)[0] + suffix)


def run(args: argparse.Namespace) -> int:
    from training.llm.client import ClientSettings, EndpointError
    from training.llm.tables import read_texts_table, write_labelled_table
    from training.stages.llm_label import llm_label

    texts = read_texts_table(
        args.texts,
        id_column=args.id_column,
        text_column=args.text_column,
        limit=args.limit,
        sample=args.sample,
        seed=args.seed,
    )
    settings = ClientSettings(
        base_url=args.base_url,
        model=args.model,
        api_key=os.environ.get(args.api_key_env) or None,
        timeout_s=args.timeout,
        max_retries=args.max_retries,
        backoff_base_s=args.backoff,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        response_format=args.response_format,
    )
    out: Path = args.out
    try:
        result = llm_label(
            texts,
            client=settings,
            checkpoint=args.checkpoint or _beside(out, ".checkpoint.jsonl"),
            failures_out=_beside(out, ".failed.jsonl"),
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            max_attempts=args.max_attempts,
            progress=not args.no_progress,
        )
    except EndpointError as error:
        print(f"llm-label stopped: {error}\nFinished labels are kept in the checkpoint; run again to resume.")
        return 2
    write_labelled_table(result.records, out)
    report_path: Path = args.report or _beside(out, ".report.json")
    report_path.write_text(json.dumps(asdict(result.report), ensure_ascii=False, indent=2) + "\n")
    print(result.report.summary())
    print(f"{len(result.records):,} labelled texts written to {out}; report {report_path}")
    return 0 if result.report.failed_items == 0 else 1
