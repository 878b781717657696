"""The labelling loop end to end: select from a comments table -> Label Studio tasks -> annotators
(simulated: the export format Label Studio writes, some predictions corrected, some tasks skipped)
-> the export as the pipeline config's ``manual_labels`` -> the train-info stage trains on exactly
the annotated rows, with the labels the annotators gave."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.labelled import synthetic_records
from training.cli import main
from training.config import load_config
from training.labelling.tasks import MAIN_CONTROL, SUB_CONTROL
from training.layout import RunLayout
from training.modeling.saved import read_card
from training.stages import train_info
from training.tables import read_labelled
from training.taxonomy import normalise_labels

QUICK = {"epochs": 1, "batch_size": 8, "learning_rate": 0.01, "warmup_ratio": 0.0, "max_sequence_length": 24}
CORRECTIONS = [(["information"], ["domain_knowledge"]), (["social", "emotions_positive"], ["interaction", "joy"])]


def _annotate(tasks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, tuple[set[str], set[str]]]]:
    """Label Studio's JSON export of ``tasks`` after annotation; and text -> (main labels, sub-categories)
    of every task that has a usable annotation."""
    exported: list[dict[str, Any]] = []
    expected: dict[str, tuple[set[str], set[str]]] = {}
    for number, task in enumerate(tasks):
        result = copy.deepcopy(task["predictions"][0]["result"])
        for item in result:
            item.update({"id": f"r{number}", "origin": "prediction"})
        if number % 3 == 0:  # corrected: the main label and its sub-category changed together
            mains, subs = CORRECTIONS[(number // 3) % len(CORRECTIONS)]
            result = [
                {**result[0], "origin": "manual", "value": {"choices": mains}},
                {**result[0], "from_name": SUB_CONTROL, "origin": "manual", "value": {"choices": subs}},
            ]
        annotations = [
            {
                "id": 100 + number,
                "completed_by": 7,
                "was_cancelled": number % 5 == 4,  # skipped by the annotator: not a label
                "ground_truth": False,
                "created_at": "2026-11-30T10:00:00Z",
                "updated_at": f"2026-11-30T10:{number:02d}:00Z",
                "result": result,
            }
        ]
        exported.append({"id": 1 + number, **task, "annotations": annotations, "project": 3})
        if number % 5 != 4:
            chosen = {name: set(item["value"]["choices"]) for name, item in ((i["from_name"], i) for i in result)}
            expected[task["data"]["text"]] = (chosen[MAIN_CONTROL], chosen.get(SUB_CONTROL, set()))
    exported.append({"id": 99, "data": {"text": "没人标的评论"}, "annotations": [], "predictions": []})
    return exported, expected


def test_label_studio_export_round_trips_into_train_info(
    tiny_models_dir: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    comments = tmp_path / "traffic.jsonl"
    records = synthetic_records(40, seed=11)
    comments.write_text(
        "".join(json.dumps({"id": r.id, "text": r.text}, ensure_ascii=False) + "\n" for r in records + records[:5]),
        encoding="utf-8",
    )
    selected = tmp_path / "select"
    args = ["select-for-labelling", "--table", str(comments), "--id-column", "id", "--count", "15"]
    assert main([*args, "--models-dir", str(tiny_models_dir), "--out", str(selected), "--no-progress"]) == 0
    tasks = json.loads((selected / "tasks.json").read_text(encoding="utf-8"))
    assert len(tasks) == 15

    exported, expected = _annotate(tasks)
    export = tmp_path / "project-3-at-2026-11-30.json"
    export.write_text(json.dumps(exported, ensure_ascii=False, indent=1), encoding="utf-8")
    config_path = tmp_path / "pipeline.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(tmp_path / "run"),
                "manual_labels": str(export),
                "train_v1": {"enabled": False},
                "train_info": {"encoder": str(tiny_encoder_dir), "negatives": "all", "training": QUICK},
            }
        ),
        encoding="utf-8",
    )
    config = load_config(config_path)
    layout = RunLayout(config)
    assert train_info.labels(layout) == export  # the stage reads the export as the manual labels
    train_info.run(layout, config.train_info, fingerprint="labelling-round-trip", progress=False)

    card = read_card(layout.model(train_info.SECTION))  # the trained information model is there
    assert card.kind == "information"
    rows = read_labelled(layout.table(train_info.SECTION, "train")) + read_labelled(train_info.validation_table(layout))
    trained = {row.text: normalise_labels(row.labels, row.subcategories)[:2] for row in rows}
    assert len(rows) == len(trained) == 12  # 15 tasks, 3 skipped by the annotators
    # as annotated, up to the pipeline's normalisation (the reader takes the sub-category `other` for a main name)
    assert trained == {
        text: normalise_labels(sorted(mains), sorted(subs))[:2] for text, (mains, subs) in expected.items()
    }
    assert sum("information" in labels for labels, _ in trained.values()) >= 3  # the corrections are in
    assert {row.source for row in rows} == {"manual"}
