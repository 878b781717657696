"""Stage 2, llm-label: unique texts -> LLM pseudo-labels (the labelled-text table, source "llm").

The work is in ``training/llm/``: ``prompt`` (the reference prompt and answer schema), ``client``
(OpenAI-compatible endpoint, retries, structured-output fallback), ``parsing`` (cleaning and
tolerant JSON), ``checkpoint`` (append-only fsync'd JSONL), ``labeller`` (the concurrent loop and
its retry queue). This function wires them: it skips what the checkpoint already holds, labels
the rest, and returns every requested text's record (earlier runs' included) in input order.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from training.llm.checkpoint import CheckpointWriter, load_checkpoint
from training.llm.client import ChatClient, ClientSettings
from training.llm.labeller import Labeller, LabelReport, run_labeller
from training.runner import PipelineError
from training.stages import ingest

if TYPE_CHECKING:
    from training.config import PipelineConfig
    from training.layout import RunLayout

NAME = "llm-label"
SECTION = "llm_label"
DESCRIPTION = "unique texts -> LLM pseudo-labels"

log = logging.getLogger(__name__)


class Settings(BaseModel):
    """Stage 2: unique texts -> LLM labels via an OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="Endpoint base URL, e.g. http://127.0.0.1:8000/v1 (required).")
    model: str = Field(description="Model name the endpoint serves (required).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key, if any.")
    limit: int | None = Field(None, ge=1, description="Label only the first N unique texts.")
    sample: int | None = Field(None, ge=1, description="Label a seeded random sample of N unique texts.")
    batch_size: int = Field(50, ge=1, description="Comments per request (reference: 50).")
    concurrency: int = Field(4, ge=1, description="Requests in flight.")
    max_attempts: int = Field(2, ge=1, description="Failed sends of a batch before it is split.")
    timeout: float = Field(120.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(4, ge=0, description="Retries of a request on transient errors.")
    backoff: float = Field(1.0, ge=0, description="Base seconds of the exponential backoff.")
    max_tokens: int = Field(4096, ge=1, description="Completion token limit per request.")
    temperature: float = Field(0.0, ge=0)
    response_format: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema", description="Structured output asked for first (falls back when the server rejects it)."
    )

    def client(self) -> ClientSettings:
        """The endpoint client's settings (the API key read from ``api_key_env``)."""
        return ClientSettings(
            base_url=self.base_url,
            model=self.model,
            api_key=os.environ.get(self.api_key_env) or None,
            timeout_s=self.timeout,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            response_format=self.response_format,
        )


@dataclass
class LabelRun:
    records: list[dict[str, Any]]  # labelled-text records for the requested ids, input order
    report: LabelReport


def llm_label(
    texts: Sequence[tuple[str, str]],
    *,
    client: ClientSettings,
    checkpoint: Path,
    failures_out: Path | None = None,
    batch_size: int = 50,
    concurrency: int = 4,
    max_attempts: int = 2,
    progress: bool = True,
    seed: int | None = None,
) -> LabelRun:
    """Label ``(id, text)`` pairs with an LLM behind an OpenAI-compatible endpoint.

    ``checkpoint``: JSONL of finished labels; ids in it are skipped, so calling again after a crash
    resumes. ``failures_out``: JSONL of items that failed every retry and split (they are retried by
    the next run). ``max_attempts``: failed sends of a batch before it is split. ``seed`` seeds the
    retry jitter (tests).
    """
    done = load_checkpoint(checkpoint)
    wanted: dict[str, str] = {}
    for identifier, text in texts:
        wanted.setdefault(identifier, text)
    todo = [(identifier, text) for identifier, text in wanted.items() if identifier not in done]
    chat = ChatClient(client, rng=random.Random(seed) if seed is not None else None)
    failures_handle = None
    if failures_out is not None:
        failures_out.parent.mkdir(parents=True, exist_ok=True)
        failures_handle = failures_out.open("a", encoding="utf-8")
    try:
        with (
            CheckpointWriter(checkpoint) as writer,
            tqdm(total=len(todo), unit=" texts", desc="llm-label", disable=not progress) as bar,
        ):

            def record_done(count: int) -> None:
                bar.update(count)

            def record_failure(failure: dict[str, str]) -> None:
                bar.update(1)
                if failures_handle is not None:
                    failures_handle.write(json.dumps(failure, ensure_ascii=False) + "\n")
                    failures_handle.flush()

            labeller = Labeller(
                chat,
                writer,
                batch_size=batch_size,
                concurrency=concurrency,
                max_attempts=max_attempts,
                on_done=record_done,
                on_failed=record_failure,
            )
            labeller.report.texts = len(wanted)
            labeller.report.already_done = len(wanted) - len(todo)
            labeller.report.to_label = len(todo)
            log.info("%d texts: %d already labelled, %d to label", len(wanted), len(wanted) - len(todo), len(todo))
            report = run_labeller(labeller, todo)
    finally:
        if failures_handle is not None:
            failures_handle.close()
    for record in labeller.records:
        done.setdefault(record["id"], record)
    records = [done[identifier] for identifier in wanted if identifier in done]
    report.output_records = len(records)
    labels = Counter(label for record in records for label in record["labels"])
    report.output_label_distribution = dict(labels.most_common())
    return LabelRun(records=records, report=report)


def beside(path: Path, suffix: str) -> Path:
    """``labels.parquet`` -> ``labels<suffix>``: where the checkpoint, failures and report of a table go."""
    return path.with_name(path.name.rsplit(".", 1)[0] + suffix)


def label_files(
    texts: Sequence[tuple[str, str]],
    out: Path,
    *,
    settings: Settings,
    checkpoint: Path | None = None,
    report: Path | None = None,
    progress: bool = True,
) -> LabelRun:
    """Label ``texts`` and write the labelled-text table ``out``, its checkpoint, failures and report beside it.

    Texts that failed every retry stay out of ``out``; a second call retries them (finished labels are kept).
    """
    from training.llm.tables import write_labelled_table
    from training.tables import write_json

    result = llm_label(
        texts,
        client=settings.client(),
        checkpoint=checkpoint or beside(out, ".checkpoint.jsonl"),
        failures_out=beside(out, ".failed.jsonl"),
        batch_size=settings.batch_size,
        concurrency=settings.concurrency,
        max_attempts=settings.max_attempts,
        progress=progress,
    )
    write_labelled_table(result.records, out)
    write_json(report or beside(out, ".report.json"), asdict(result.report))
    return result


def texts(layout: RunLayout) -> Path:
    """The texts this stage labels: ingest's unique texts when ingest is configured, else ``texts``."""
    if layout.config.ingest is not None or layout.config.texts is None:
        return ingest.texts_table(layout.dir(ingest.SECTION))
    return layout.config.texts


def labels_table(layout: RunLayout) -> Path:
    return layout.dir(SECTION) / "labels.jsonl"


def enabled(config: PipelineConfig) -> bool:
    return config.llm_label is not None


def inputs(layout: RunLayout) -> list[Path]:
    return [texts(layout)]


def outputs(layout: RunLayout) -> list[Path]:
    return [labels_table(layout)]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    from training.llm.tables import read_texts_table

    rows = read_texts_table(texts(layout), limit=settings.limit, sample=settings.sample, seed=layout.config.seed)
    out = labels_table(layout)
    # The checkpoint survives a killed run: the next run labels only what it lacks.
    result = label_files(rows, out, settings=settings, report=layout.dir(SECTION) / "report.json", progress=progress)
    if result.report.failed_items:
        raise PipelineError(
            f"llm-label: {result.report.failed_items} texts failed every retry "
            f"(see {beside(out, '.failed.jsonl')}); run again to retry them, finished labels are kept"
        )
