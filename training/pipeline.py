"""The training pipeline as a recipe: every stage, top to bottom, with what it reads and writes.

    1 ingest      raw danmaku files         -> run/ingest/{comments,texts}.parquet, ingest-report.json
    2 llm-label   unique texts              -> run/llm_label/labels.jsonl (+ resumable checkpoint), report.json
    3 train-v1    labels                    -> run/train_v1/{v1_train,holdout,test}.jsonl, model/
    4 agree       v1 model + holdout        -> run/agree/holdout.jsonl, report.{json,md}
    5 curate      annotated holdout+manual  -> run/curate/curated.jsonl, report.{json,md}
    6 train-v2    curated                   -> run/train_v2/model/
    7 train-info  manual labels (or curated)-> run/train_info/{train,validation}.jsonl, model/
    8 export      v2, info models           -> models/<emotion>[-int8|-fp16], models/<information>[...]
    9 evaluate    bundles + tables          -> run/evaluate/<bundle>/<table>/report.{json,md}, *.png, summary.md

``danmaku-train run --config pipeline.yaml`` builds these stages and hands them to
``training.runner.StageRunner``, which skips the ones whose inputs and config are unchanged.
Each stage calls the file-level function of its command (``training/commands/<stage>.py``), so
``run`` and the single-stage commands do exactly the same thing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.config import PipelineConfig
from training.runner import PipelineError, Stage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLayout:
    """Where every stage of a run reads and writes (all under ``run_dir`` except the bundles)."""

    config: PipelineConfig

    def dir(self, stage: str) -> Path:
        return self.config.run_dir / stage

    def table(self, stage: str, name: str) -> Path:
        return self.dir(stage) / f"{name}.{self.config.table_format}"

    @property
    def unique_texts(self) -> Path:
        return self.dir("ingest") / "texts.parquet"

    @property
    def texts(self) -> Path:
        """The texts stage 2 labels: stage 1's unique texts when it is configured, else ``texts``."""
        if self.config.ingest is not None or self.config.texts is None:
            return self.unique_texts
        return self.config.texts

    @property
    def llm_labels(self) -> Path:
        return self.dir("llm_label") / "labels.jsonl"

    @property
    def labels(self) -> Path:
        """The table stage 3 starts from: stage 2's output when it is configured, else ``labels``."""
        if self.config.llm_label is not None:
            return self.llm_labels
        assert self.config.labels is not None  # guaranteed by PipelineConfig validation
        return self.config.labels

    @property
    def information_labels(self) -> Path:
        if self.config.train_info.source == "curated":
            return self.table("curate", "curated")
        assert self.config.manual_labels is not None  # guaranteed by PipelineConfig validation
        return self.config.manual_labels

    def bundle(self, name: str) -> Path:
        return self.config.models_dir / name

    def bundles(self) -> list[Path]:
        """Every bundle directory export writes (fp32 first, then the variants)."""
        export = self.config.export
        names = [export.emotion_name] + ([export.information_name] if self.config.train_info.enabled else [])
        suffixes = [""] + (["-int8"] if export.int8 else []) + (["-fp16"] if export.fp16 else [])
        return [self.bundle(f"{name}{suffix}") for name in names for suffix in suffixes]

    @property
    def manifest(self) -> Path:
        return self.dir("export") / "manifest.json"


def build_stages(config: PipelineConfig, *, progress: bool = True) -> list[Stage]:
    """The stages of ``config`` in pipeline order (see the module docstring)."""
    layout = RunLayout(config)
    shared = {
        "seed": config.seed,
        "preprocessing": config.preprocessing.model_dump(mode="json"),
        "table_format": config.table_format,
    }

    def settings(*sections: str) -> Callable[[], dict[str, Any]]:
        return lambda: {**shared, **{section: config.section(section) for section in sections}}

    def run_ingest(_fingerprint: str) -> None:
        from training.stages.ingest import ingest
        from training.tables import write_json

        settings = config.ingest
        assert settings is not None  # the stage is enabled only when configured
        out = layout.dir("ingest")
        report = ingest(
            settings.inputs,
            comments_out=out / "comments.parquet",
            texts_out=layout.unique_texts,
            malformed_out=out / "malformed.jsonl",
            file_format=settings.file_format,
            text_column=settings.text_column,
            video_column=settings.video_column,
            timezone=settings.timezone,
            chunk_rows=settings.chunk_rows,
            buckets=settings.buckets,
            progress=progress,
        )
        write_json(out / "ingest-report.json", report.to_dict())
        logger.info("%s", report.summary())

    def run_llm_label(_fingerprint: str) -> None:
        import os
        from dataclasses import asdict

        from training.llm.client import ClientSettings
        from training.llm.tables import read_texts_table, write_labelled_table
        from training.stages.llm_label import llm_label
        from training.tables import write_json

        settings = config.llm_label
        assert settings is not None  # the stage is enabled only when configured
        texts = read_texts_table(layout.texts, limit=settings.limit, sample=settings.sample, seed=config.seed)
        out = layout.dir("llm_label")
        # The checkpoint survives a killed run: the next run labels only what it lacks.
        result = llm_label(
            texts,
            client=ClientSettings(
                base_url=settings.base_url,
                model=settings.model,
                api_key=os.environ.get(settings.api_key_env) or None,
                timeout_s=settings.timeout,
                max_retries=settings.max_retries,
                backoff_base_s=settings.backoff,
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
                response_format=settings.response_format,
            ),
            checkpoint=out / "labels.checkpoint.jsonl",
            failures_out=out / "labels.failed.jsonl",
            batch_size=settings.batch_size,
            concurrency=settings.concurrency,
            max_attempts=settings.max_attempts,
            progress=progress,
        )
        if result.report.failed_items:
            raise PipelineError(
                f"llm-label: {result.report.failed_items} texts failed every retry "
                f"(see {out / 'labels.failed.jsonl'}); run again to retry them, finished labels are kept"
            )
        write_labelled_table(result.records, layout.llm_labels)
        write_json(out / "report.json", asdict(result.report))

    def run_train_v1(fingerprint: str) -> None:
        from training.commands.train_v1 import train_v1_files

        train_v1_files(
            layout.labels,
            layout.dir("train_v1"),
            settings=config.train_v1,
            preprocessing=config.preprocessing,
            seed=config.seed,
            table_format=config.table_format,
            fingerprint=fingerprint,
            progress=progress,
        )

    def run_agree(_fingerprint: str) -> None:
        from training.commands.agree import agree_files

        agree_files(
            layout.dir("train_v1") / "model",
            layout.table("train_v1", "holdout"),
            layout.dir("agree"),
            settings=config.agree,
            table_format=config.table_format,
            progress=progress,
        )

    def run_curate(_fingerprint: str) -> None:
        from training.commands.curate import curate_files

        curate_files(
            layout.table("agree", "holdout") if config.train_v1.enabled else None,
            config.manual_labels,
            layout.dir("curate"),
            settings=config.curate,
            seed=config.seed,
            table_format=config.table_format,
        )

    def run_train_v2(fingerprint: str) -> None:
        from training.commands.train_v2 import train_v2_files

        train_v2_files(
            layout.table("curate", "curated"),
            layout.dir("train_v2"),
            settings=config.train_v2,
            preprocessing=config.preprocessing,
            seed=config.seed,
            fingerprint=fingerprint,
            progress=progress,
        )

    def run_train_info(fingerprint: str) -> None:
        from training.commands.train_info import train_info_files

        train_info_files(
            layout.information_labels,
            layout.dir("train_info"),
            settings=config.train_info,
            preprocessing=config.preprocessing,
            seed=config.seed,
            table_format=config.table_format,
            fingerprint=fingerprint,
            progress=progress,
        )

    def run_export(_fingerprint: str) -> None:
        from training.commands.export import export_files
        from training.tables import write_json

        snapshot = config.model_dump(mode="json")
        written = export_files(
            layout.dir("train_v2") / "model",
            layout.bundle(config.export.emotion_name),
            validation=layout.table("curate", "curated"),
            settings=config.export,
            data=[
                *([(layout.labels, "labels")] if config.train_v1.enabled else []),
                *([(config.manual_labels, "manual")] if config.manual_labels else []),
                (layout.table("curate", "curated"), "curated"),
            ],
            config=snapshot,
        )
        if config.train_info.enabled:
            written += export_files(
                layout.dir("train_info") / "model",
                layout.bundle(config.export.information_name),
                validation=layout.table("train_info", "validation"),
                settings=config.export,
                data=[(layout.information_labels, "labels"), (layout.table("train_info", "train"), "train")],
                config=snapshot,
            )
        write_json(layout.manifest, {"bundles": [str(path) for path in written]})

    def run_evaluate(_fingerprint: str) -> None:
        from training.commands.evaluate import evaluate_files
        from training.evaluation.markdown import summary_markdown
        from training.evaluation.predictors import BundlePredictor
        from training.stages.evaluate import headline
        from training.tables import iter_labelled, write_json, write_text

        test = layout.table("train_v1", "test")
        has_test = config.train_v1.enabled and test.is_file() and any(True for _ in iter_labelled(test))
        evaluate = config.evaluate
        rows: list[dict[str, Any]] = []
        for bundle_dir in layout.bundles():
            if not evaluate.variants and bundle_dir.name not in (
                config.export.emotion_name,
                config.export.information_name,
            ):
                continue
            predictor = BundlePredictor(bundle_dir, batch_size=evaluate.batch_size)
            if predictor.task == "emotion":
                tables: list[tuple[str, Path, str | None]] = [
                    ("validation", layout.table("curate", "curated"), "validation")
                ]
            else:
                tables = [("validation", layout.table("train_info", "validation"), None)]
            if has_test:
                tables.append(("test", test, None))
            tables += [(path.stem, path, None) for path in evaluate.tables]
            for table_name, path, split in tables:
                report = evaluate_files(
                    bundle_dir,
                    path,
                    layout.dir("evaluate") / bundle_dir.name / table_name,
                    split=split,
                    negatives=config.train_info.negatives,
                    plots=evaluate.plots,
                    progress=progress,
                    predictor=predictor,
                )
                rows.append(
                    {
                        "bundle": bundle_dir.name,
                        "table": table_name,
                        "default": headline(report, at="default"),
                        "model": headline(report, at="model"),
                        "report": str(Path(bundle_dir.name) / table_name / "report.md"),
                    }
                )
        write_json(layout.dir("evaluate") / "summary.json", {"evaluations": rows})
        write_text(layout.dir("evaluate") / "summary.md", summary_markdown(rows))

    manual = [config.manual_labels] if config.manual_labels is not None else []
    evaluation_tables = [
        layout.table("curate", "curated"),
        *([layout.table("train_v1", "test")] if config.train_v1.enabled else []),
        *([layout.table("train_info", "validation")] if config.train_info.enabled else []),
        *config.evaluate.tables,
    ]
    return [
        Stage(
            name="ingest",
            section="ingest",
            settings=settings("ingest"),
            inputs=lambda: list(config.ingest.inputs) if config.ingest else [],
            outputs=lambda: [layout.unique_texts],
            run=run_ingest,
            enabled=config.ingest is not None,
            description="raw danmaku files -> comments and unique texts",
        ),
        Stage(
            name="llm-label",
            section="llm_label",
            settings=settings("llm_label"),
            inputs=lambda: [layout.texts],
            outputs=lambda: [layout.llm_labels],
            run=run_llm_label,
            enabled=config.llm_label is not None,
            description="unique texts -> LLM pseudo-labels",
        ),
        Stage(
            name="train-v1",
            section="train_v1",
            settings=settings("train_v1"),
            inputs=lambda: [layout.labels],
            outputs=lambda: [
                layout.dir("train_v1") / "model",
                *(layout.table("train_v1", name) for name in ("v1_train", "holdout", "test")),
            ],
            run=run_train_v1,
            enabled=config.train_v1.enabled,
            description="sample N labels, train BERT v1; the rest is the holdout",
        ),
        Stage(
            name="agree",
            section="agree",
            settings=settings("agree"),
            inputs=lambda: [layout.dir("train_v1") / "model", layout.table("train_v1", "holdout")],
            outputs=lambda: [layout.table("agree", "holdout"), layout.dir("agree") / "report.json"],
            run=run_agree,
            enabled=config.train_v1.enabled,
            description="v1 vs LLM labels on the holdout",
        ),
        Stage(
            name="curate",
            section="curate",
            settings=settings("curate"),
            inputs=lambda: [*([layout.table("agree", "holdout")] if config.train_v1.enabled else []), *manual],
            outputs=lambda: [layout.table("curate", "curated"), layout.dir("curate") / "report.json"],
            run=run_curate,
            description="agreed/disagreed sampling + manual labels, 80/20 split",
        ),
        Stage(
            name="train-v2",
            section="train_v2",
            settings=settings("train_v2"),
            inputs=lambda: [layout.table("curate", "curated")],
            outputs=lambda: [layout.dir("train_v2") / "model"],
            run=run_train_v2,
            description="BERT v2 (emotion model), class-weighted, early stopping",
        ),
        Stage(
            name="train-info",
            section="train_info",
            settings=settings("train_info"),
            inputs=lambda: [layout.information_labels],
            outputs=lambda: [
                layout.dir("train_info") / "model",
                layout.table("train_info", "train"),
                layout.table("train_info", "validation"),
            ],
            run=run_train_info,
            enabled=config.train_info.enabled,
            description="information vs others on manual labels",
        ),
        Stage(
            name="export",
            section="export",
            settings=settings("export", "train_info"),
            inputs=lambda: [
                layout.dir("train_v2") / "model",
                layout.table("curate", "curated"),
                *(
                    [layout.dir("train_info") / "model", layout.table("train_info", "validation")]
                    if config.train_info.enabled
                    else []
                ),
            ],
            outputs=lambda: [*layout.bundles(), layout.manifest],
            run=run_export,
            description="ONNX bundles (+ int8/fp16) with tuned thresholds, provenance, metrics",
        ),
        Stage(
            name="evaluate",
            section="evaluate",
            settings=settings("evaluate", "train_info"),
            inputs=lambda: [*layout.bundles(), *evaluation_tables],
            outputs=lambda: [layout.dir("evaluate") / "summary.json"],
            run=run_evaluate,
            description="per-class figures, threshold sweeps, PR curves, confusion",
        ),
    ]
