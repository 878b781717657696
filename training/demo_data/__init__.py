"""The demo labelled set: danmaku-style comments written and labelled by this project's team.

It is the pipeline's "manual labels" and the training data of a fresh machine (no LLM endpoint,
no hub). ``labels.jsonl`` ships inside the package, so an installed ``training`` finds it too.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from training.records import LabelledText

LABELS_FILE = "labels.jsonl"
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "text", "labels", "subcategories", "source")


def demo_labels_path() -> Path:
    """Path of the packaged ``labels.jsonl`` (raises with a reinstall hint when it is missing)."""
    path = Path(str(resources.files(__name__).joinpath(LABELS_FILE)))
    if not path.is_file():
        raise FileNotFoundError(
            f"the demo labels {path} are missing from the installed package; "
            "reinstall danmaku-classifier (package-data must include *.jsonl)"
        )
    return path


def load_demo_labels(path: Path | None = None) -> list[LabelledText]:
    """Read the demo set (or a file in the same format) as typed records, in file order.

    Raises ``ValueError`` naming the file and line when a line is not a JSON object with the
    labelled-text columns of the right types.
    """
    source_path = path if path is not None else demo_labels_path()
    records: list[LabelledText] = []
    with source_path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            records.append(_parse_line(line, source_path, number))
    return records


def _parse_line(line: str, path: Path, number: int) -> LabelledText:
    where = f"{path}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error.msg})") from error
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [column for column in REQUIRED_COLUMNS if column not in row]
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(missing)}")
    for column in ("id", "text", "source"):
        if not isinstance(row[column], str):
            raise ValueError(f"{where}: column {column!r} must be a string, got {row[column]!r}")
    for column in ("labels", "subcategories"):
        value = row[column]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{where}: column {column!r} must be a list of strings, got {value!r}")
    extra = {key: value for key, value in row.items() if key not in REQUIRED_COLUMNS}
    return LabelledText(
        id=row["id"],
        text=row["text"],
        labels=tuple(row["labels"]),
        subcategories=tuple(row["subcategories"]),
        source=row["source"],
        extra=extra,
    )
