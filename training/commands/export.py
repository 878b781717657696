"""``danmaku-train export``: a trained model directory -> a model bundle (+ int8 / fp16 variants).

Thresholds are tuned per class on ``--validation`` (rows with ``split == validation`` when the
table has a split column) and written into the bundle's heads; bundle.json gets provenance
(``--data`` files with sha256 and rows, the git commit) and validation metrics.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.commands.options import (
    add_common_options,
    add_settings_options,
    config_section,
    reported_errors,
    settings_from_args,
)
from training.config import ExportSettings


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export", help="stage 8: export a trained model as an ONNX bundle (thresholds tuned on validation)"
    )
    parser.add_argument("--model", type=Path, required=True, help="trained model directory (train-* OUT/model)")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write, e.g. models/emotion")
    parser.add_argument("--validation", type=Path, help="table whose validation rows tune the thresholds")
    parser.add_argument("--data", type=Path, nargs="*", default=[], help="data files recorded in the provenance")
    add_common_options(parser)
    add_settings_options(parser, ExportSettings)
    parser.set_defaults(handler=reported_errors(run))


def validation_rows(path: Path | None) -> list[Any]:
    """The rows of ``path`` with ``split == validation`` if it has a split column, else all rows."""
    if path is None:
        return []
    from training.tables import read_labelled

    records = read_labelled(path, default_source="validation")
    if any("split" in record.extra for record in records):
        return [record for record in records if record.extra.get("split") == "validation"]
    return records


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
    settings: ExportSettings,
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
    )
    return [result.bundle.directory, *(variant.directory for variant in result.variants.values())]


def run(args: argparse.Namespace) -> int:
    section, _seed, _preprocessing = config_section(args, "export")
    settings = settings_from_args(args, ExportSettings, base=section, key="export")
    written = export_files(
        args.model,
        args.out,
        validation=args.validation,
        settings=settings,
        data=[(path, "data") for path in args.data],
    )
    for directory in written:
        print(f"bundle: {directory}")
    return 0
