"""The distill stage end to end on the tiny encoder: a trained tiny teacher, 40 unlabelled texts, a
one-layer student saved in the train-v2 format; the labels-only baseline through the same stage;
and the pipeline wiring (off by default, export can pick the student)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from service.text import Preprocessing
from tests.fixtures.labelled import synthetic_records
from training.config import ConfigError, parse_config
from training.layout import RunLayout
from training.modeling.distillation import encoder_layers
from training.modeling.fine_tune import MODEL_DIR, TEACHER_SCORES_DIR, fine_tune_emotion
from training.modeling.saved import load_classifier
from training.modeling.settings import EarlyStoppingSettings, TrainingSettings
from training.modeling.teacher_scores import CHUNKS_DIR
from training.pipeline import build_stages
from training.stages import distill, export
from training.tables import write_labelled

FAST = EarlyStoppingSettings(epochs=1, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, max_sequence_length=24)


def test_distill_trains_a_loadable_smaller_student(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    records = synthetic_records(50, seed=11)
    teacher = fine_tune_emotion(
        records[:40],
        encoder=str(tiny_encoder_dir),
        settings=TrainingSettings(epochs=1, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, max_sequence_length=24),
        preprocessing=Preprocessing(),
        seed=0,
        work_dir=tmp_path / "teacher",
        fingerprint="teacher",
        progress=False,
    )
    curated = write_labelled(
        tmp_path / "curated.jsonl",
        [
            replace(record, extra={"split": "train" if index < 40 else "validation"})
            for index, record in enumerate(records)
        ],
    )
    test_rows = synthetic_records(5, seed=12, prefix="t")
    test_table = write_labelled(tmp_path / "test.jsonl", test_rows)
    unlabelled = [
        {"id": f"u{index}", "text": record.text} for index, record in enumerate(synthetic_records(40, seed=13))
    ]
    unlabelled += [{"id": "leak", "text": test_rows[0].text}, {"id": "seen", "text": records[0].text}]
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in unlabelled), encoding="utf-8")

    settings = distill.Settings(
        enabled=True, sample_size=1000, student_layers=1, intermediate="ffn+cls", score_chunk_rows=32, training=FAST
    )
    summary = distill.distill_files(
        [teacher.directory],
        curated,
        tmp_path / "distill",
        settings=settings,
        seed=0,
        unlabelled=texts,
        exclude=[test_table],
        progress=False,
    )
    # the test row and the curated row are left out of the sample; distinct texts only
    expected_unlabelled = {row["text"] for row in unlabelled} - {record.text for record in (*records, *test_rows)}
    assert summary["rows"] == {"train": 40, "unlabelled": len(expected_unlabelled), "validation": 10}
    assert summary["distillation"]["student_layers"] == [1]
    chunks = sorted((tmp_path / "distill" / TEACHER_SCORES_DIR / CHUNKS_DIR).glob("*.npz"))
    assert len(chunks) == math.ceil((40 + len(expected_unlabelled)) / 32)
    model, _, card = load_classifier(tmp_path / "distill" / MODEL_DIR)
    assert card.kind == "multi_head" and card.training["distillation"]["intermediate"] == "ffn+cls"
    assert len(encoder_layers(model)) == 1 and model.encoder.config.num_hidden_layers == 1
    with torch.no_grad():
        main, sub = model(input_ids=torch.tensor([[2, 5, 6, 3]]), attention_mask=torch.ones(1, 4, dtype=torch.long))
    assert main.shape == (1, 5) and sub.shape[0] == 1

    baseline = distill.distill_files(
        [teacher.directory],
        curated,
        tmp_path / "labels-only",
        settings=settings.model_copy(update={"mode": "labels-only", "intermediate": "none"}),
        seed=0,
        unlabelled=texts,
        progress=False,
    )
    assert baseline["rows"]["unlabelled"] == 0
    assert not (tmp_path / "labels-only" / TEACHER_SCORES_DIR).exists()  # no teacher involved
    _, _, baseline_card = load_classifier(tmp_path / "labels-only" / MODEL_DIR)
    assert baseline_card.training["distillation"]["mode"] == "labels-only"


def _config(tmp_path: Path, **sections: object) -> dict[str, object]:
    return {
        "run_dir": str(tmp_path / "run"),
        "models_dir": str(tmp_path / "models"),
        "manual_labels": str(tmp_path / "manual.jsonl"),
        "labels": str(tmp_path / "labels.jsonl"),
        **sections,
    }


def test_the_stage_is_off_by_default_and_export_can_pick_the_student(tmp_path: Path) -> None:
    default = parse_config(_config(tmp_path))
    assert not next(stage for stage in build_stages(default) if stage.name == "distill").enabled
    assert export.emotion_model(RunLayout(default)) == RunLayout(default).model("train_v2")
    config = parse_config(
        _config(
            tmp_path,
            texts=str(tmp_path / "texts.jsonl"),
            distill={"enabled": True},
            export={"emotion_model": "distill"},
        )
    )
    layout = RunLayout(config)
    assert export.inputs(layout)[0] == layout.model("distill")
    assert distill.inputs(layout)[:3] == [
        layout.model("train_v2"),
        layout.dir("curate") / "curated.jsonl",
        tmp_path / "texts.jsonl",
    ]
    with pytest.raises(ConfigError, match=r"distill\.enabled is false"):
        parse_config(_config(tmp_path, export={"emotion_model": "distill"}))
    with pytest.raises(ConfigError, match="no unlabelled texts"):
        parse_config(_config(tmp_path, distill={"enabled": True}))
    with pytest.raises(ConfigError, match="not both"):
        parse_config(_config(tmp_path, distill={"student_layers": 6, "student_layer_indices": [1, 3]}))
