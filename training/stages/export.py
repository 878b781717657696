"""Stage 8, export: each trained model -> a model bundle (+ int8 / fp16 variants).

Thresholds are tuned per class on a validation table (rows with ``split == validation`` when the
table has a split column) and written into the bundle's heads; bundle.json gets provenance (data
files with sha256 and rows, the git commit, the run's config) and validation metrics. The work is
in ``training/export/`` (``release``: ONNX export, parity, tuning, variants).

When train-v2 trained the joint model (``train_v2.information_head``), its one ``emotion`` bundle
carries the information head and no information bundle is written (the config refuses
``train_info.enabled`` beside it, ``training.config.PipelineConfig``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from training.splits import TRAIN, validation_rows
from training.stages import curate, train_info, train_v1
from training.tables import write_json

if TYPE_CHECKING:
    from training.config import PipelineConfig
    from training.layout import RunLayout

NAME = "export"
SECTION = "export"
DESCRIPTION = "ONNX bundles (+ int8/fp16) with tuned thresholds, provenance, metrics"
ALSO_READS: tuple[str, ...] = ("train_info",)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    emotion_name: str = Field("emotion", description="Bundle directory (and name) of BERT v2 under models_dir.")
    emotion_model: Literal["train_v2", "distill"] = Field(
        "train_v2", description="Which trained emotion model becomes that bundle: train-v2's, or the distilled student."
    )
    information_name: str = Field("information", description="Bundle directory of the information model.")
    version: str | None = Field(None, description="Version of both bundles (default: name + hash of the weights).")
    int8: bool = Field(True, description="Also write <name>-int8 (dynamic int8 quantisation, for CPU serving).")
    # The attention-output and feed-forward-output projections of BERT-like encoders
    # (``...attention.output.dense``, ``...layer.N.output.dense``) stay float32 by default. On the e5 emotion
    # model (teacher test split, 2,501 real comments, served labels) this kept 98.1% of labels equal to fp32
    # (macro-F1 -0.003) against 95.4% (-0.017) with the whole encoder in int8, at 227 vs 274 comments/s
    # (fp32: 188) on 2 AVX2 cores (docs/QUALITY.md).
    int8_float_scopes: list[str] = Field(
        [".output.dense"],
        description="int8: MatMuls whose PyTorch module path contains one of these stay float32 (default: the "
        "attention and feed-forward output projections, where int8 flipped most labels); [] quantises all.",
    )
    fp16: bool = Field(False, description="Also write <name>-fp16 (float16 weights, for GPU serving).")
    parity_rows: int = Field(64, ge=2, description="Validation texts used for the parity checks.")
    tolerance: float = Field(1e-4, gt=0, description="Largest |PyTorch - ONNX| fp32 logit difference accepted.")
    threshold_min_support: int = Field(
        5, ge=1, description="Labels with fewer validation positives keep the default threshold."
    )


def table_rows(path: Path) -> int | None:
    """Rows of a labelled-text table, None for anything else (recorded in the provenance)."""
    from training.tables import READABLE_SUFFIXES, TableError, iter_labelled

    if path.suffix.lower() not in READABLE_SUFFIXES:
        return None
    try:
        return sum(1 for _ in iter_labelled(path))
    except TableError:
        return None


def export_files(
    model_dir: Path,
    out_dir: Path,
    *,
    validation: Path | None,
    settings: Settings,
    data: Sequence[tuple[Path, str]] = (),
    config: dict[str, Any] | None = None,
) -> list[Path]:
    """Export one model (and its variants); return the bundle directories written."""
    from training.export.release import release
    from training.export.variants import Precision
    from training.provenance import data_file, git_commit

    rows = validation_rows(validation)
    provenance: dict[str, Any] = {
        "data": [data_file(path, rows=table_rows(path), role=role) for path, role in data],
        "validation": None if validation is None else data_file(validation, rows=len(rows), role="validation"),
        "git_commit": git_commit(),
    }
    if config is not None:
        provenance["config"] = config
    variants: list[Precision] = []
    if settings.int8:
        variants.append("int8")
    if settings.fp16:
        variants.append("fp16")
    result = release(
        model_dir,
        out_dir,
        validation=rows,
        version=settings.version,
        provenance=provenance,
        variants=variants,
        parity_rows=settings.parity_rows,
        tolerance=settings.tolerance,
        min_support=settings.threshold_min_support,
        int8_float_scopes=settings.int8_float_scopes,
    )
    return [result.bundle.directory, *(variant.directory for variant in result.variants.values())]


def bundle_names(config: PipelineConfig) -> list[str]:
    """The fp32 bundles export writes: the emotion model (a joint one carries the information head),
    then the information model if trained."""
    export = config.export
    return [export.emotion_name] + ([export.information_name] if config.train_info.enabled else [])


def bundles(layout: RunLayout) -> list[Path]:
    """Every bundle directory export writes (fp32 first, then the variants)."""
    export = layout.config.export
    suffixes = [""] + (["-int8"] if export.int8 else []) + (["-fp16"] if export.fp16 else [])
    return [layout.bundle(f"{name}{suffix}") for name in bundle_names(layout.config) for suffix in suffixes]


def manifest(layout: RunLayout) -> Path:
    return layout.dir(SECTION) / "manifest.json"


def emotion_model(layout: RunLayout) -> Path:
    """The trained model exported as the emotion bundle (``emotion_model``: train-v2's or distill's)."""
    return layout.model(layout.config.export.emotion_model)


def inputs(layout: RunLayout) -> list[Path]:
    information = layout.config.train_info.enabled
    return [
        emotion_model(layout),
        curate.curated_table(layout),
        *([layout.model(train_info.SECTION), train_info.validation_table(layout)] if information else []),
    ]


def outputs(layout: RunLayout) -> list[Path]:
    return [*bundles(layout), manifest(layout)]


def run(layout: RunLayout, settings: Settings, *, fingerprint: str, progress: bool = True) -> None:
    config = layout.config
    snapshot = config.model_dump(mode="json")
    curated = curate.curated_table(layout)
    written = export_files(
        emotion_model(layout),
        layout.bundle(settings.emotion_name),
        validation=curated,
        settings=settings,
        data=[
            *([(train_v1.labels(layout), "labels")] if config.train_v1.enabled else []),
            *([(config.manual_labels, "manual")] if config.manual_labels else []),
            (curated, "curated"),
        ],
        config=snapshot,
    )
    if config.train_info.enabled:
        written += export_files(
            layout.model(train_info.SECTION),
            layout.bundle(settings.information_name),
            validation=train_info.validation_table(layout),
            settings=settings,
            data=[
                (train_info.labels(layout), "labels"),
                (layout.table(train_info.SECTION, TRAIN), "train"),
            ],
            config=snapshot,
        )
    write_json(manifest(layout), {"bundles": [str(path) for path in written]})
