"""Select comments for labelling and write them as Label Studio tasks (``danmaku-train select-for-labelling``).

Read the comments (``comments``), collapse texts equal after the emotion bundle's preprocessing,
score the distinct ones with the served models (``scoring``; a second model set too, for
disagreement), pick (``selection``), and write under ``out_dir``:

- ``tasks.json``: the Label Studio tasks, prediction pre-filled (``tasks``), most uncertain first;
- ``label_config.xml``: the labelling interface those tasks and ``training.labelstudio`` expect;
- ``report.json``: counts, strategy, models, the uncertainty range of every distinct text and of
  the picked ones per served label.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from service.settings import Mode, Settings
from service.text import preprocess
from training.labelling.comments import read_comments
from training.labelling.scoring import ServedSet, served_set
from training.labelling.selection import (
    DEFAULT_POOL_FACTOR,
    DEFAULT_STRATEGY,
    Strategy,
    first_of_each,
    score_summary,
    select,
    selection_report,
    uncertainty,
)
from training.labelling.tasks import Pick, label_config_xml, task
from training.tables import write_json, write_text

TASKS_FILE = "tasks.json"
CONFIG_FILE = "label_config.xml"
REPORT_FILE = "report.json"


def _models(settings: Settings, served: ServedSet) -> dict[str, Any]:
    return {
        "dir": str(settings.models_dir),
        "emotion": settings.emotion_bundle,
        "information": settings.information_bundle,
        "versions": served.versions,
    }


def select_for_labelling_files(
    table: Path,
    out_dir: Path,
    *,
    settings: Settings,
    compare: Settings | None = None,
    text_column: str = "text",
    id_column: str | None = None,
    count: int = 500,
    strategy: Strategy = DEFAULT_STRATEGY,
    pool_factor: int = DEFAULT_POOL_FACTOR,
    seed: int = 0,
    mode: Mode = "precision",
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> dict[str, Any]:
    """Write ``tasks.json``, ``label_config.xml`` and ``report.json`` under ``out_dir``; return the report.

    ``progress(description, total)`` returns the callback told how many comments each call scored."""
    from service.bundle import read_metadata

    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    if strategy == "disagreement" and compare is None:
        raise ValueError("strategy 'disagreement' needs a second model set (--compare-models-dir)")
    comments = read_comments(table, text_column=text_column, id_column=id_column)
    preprocessing = read_metadata(settings.models_dir / settings.emotion_bundle).preprocessing
    firsts, duplicates = first_of_each([preprocess(comment.text, preprocessing) for comment in comments])
    distinct = [comments[index] for index in firsts]
    texts = [comment.text for comment in distinct]

    def scored(model_set: Settings, name: str) -> ServedSet:
        advance = progress(f"scoring ({name})", len(texts)) if progress is not None else None
        return served_set(model_set, texts, mode=mode, on_progress=advance)

    served = scored(settings, "models")
    other = scored(compare, "compared models") if compare is not None else None
    uncertainties = uncertainty(served.scores, strategy, other.scores if other is not None else None)
    chosen = select(texts, uncertainties, count=count, seed=seed, pool_factor=pool_factor)
    chosen.sort(key=lambda index: -float(uncertainties[index]))  # the tasks file: least sure first
    picks = [
        Pick(
            comment_id=distinct[index].id,
            text=distinct[index].text,
            table=distinct[index].table,
            row=distinct[index].row,
            duplicates=duplicates[index],
            served_label=served.scores.served[index],
            labels=served.labels[index],
            subcategory=served.subcategories[index],
            uncertainty=float(uncertainties[index]),
        )
        for index in chosen
    ]
    report = selection_report(
        [pick.served_label for pick in picks],
        np.array([pick.uncertainty for pick in picks]),
        considered=len(texts),
        strategy=strategy,
    )
    report.update(
        {
            "table": str(table),
            "comments": len(comments),
            "distinct_texts": len(texts),
            "considered_uncertainty": score_summary(uncertainties),
            "count_asked": count,
            "pool_factor": pool_factor,
            "seed": seed,
            "mode": mode,
            "information_threshold": served.scores.information_threshold,
            "models": _models(settings, served),
        }
    )
    if compare is not None and other is not None:
        report["compared_models"] = _models(compare, other)
        report["served_label_differs"] = int(
            sum(a != b for a, b in zip(served.scores.served, other.scores.served, strict=True))
        )
    write_json(out_dir / TASKS_FILE, [task(pick, versions=served.versions) for pick in picks])
    write_text(out_dir / CONFIG_FILE, label_config_xml())
    write_json(out_dir / REPORT_FILE, report)
    return report
