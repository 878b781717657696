"""Public emotion tables as polarity-only training rows: mapping, sampling, targets and the CLI form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.modeling.targets import emotion_targets
from training.modeling.trainer import positive_class_weights
from training.polarity_sets import PolaritySet, is_polarity_only, polarity_of, polarity_rows


def _smp(path: Path) -> Path:
    items = [
        {"id": 1, "content": "太开心了", "label": "happy"},
        {"id": 2, "content": "气死我了", "label": "angry"},
        {"id": 3, "content": "今天星期三", "label": "neutral"},
        {"id": 4, "content": "居然这样", "label": "surprise"},
        {"id": 5, "content": "好害怕", "label": "fear"},
    ]
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return path


def test_rows_without_polarity_are_left_out_and_the_rest_mapped(tmp_path: Path) -> None:
    rows = polarity_rows(PolaritySet(path=_smp(tmp_path / "virus.txt"), format="smp2020"), seed=0)
    assert [(row.text, row.labels) for row in rows] == [
        ("太开心了", ("emotions_positive",)),
        ("气死我了", ("emotions_negative",)),
        ("好害怕", ("emotions_negative",)),
    ]
    assert all(is_polarity_only(row) and row.source == "smp2020" for row in rows)
    assert polarity_of("like", "clue_emotion") == ("emotions_positive",)
    assert polarity_of("surprise", "clue_emotion") == ()


def test_clue_json_lines_and_seeded_sampling(tmp_path: Path) -> None:
    path = tmp_path / "valid.txt"
    lines = [{"id": i, "content": f"文本{i}", "label": "sadness" if i % 2 else "happiness"} for i in range(50)]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines), encoding="utf-8")
    spec = PolaritySet(path=path, format="clue_emotion", max_rows=10)
    first, again = polarity_rows(spec, seed=3), polarity_rows(spec, seed=3)
    assert len(first) == 10 and [row.id for row in first] == [row.id for row in again]
    assert [row.id for row in polarity_rows(spec, seed=4)] != [row.id for row in first]


def test_polarity_rows_have_main_targets_and_unknown_sub_targets(tmp_path: Path) -> None:
    rows = polarity_rows(PolaritySet(path=_smp(tmp_path / "virus.txt"), format="smp2020"), seed=0)
    main, sub = emotion_targets(rows)
    assert main[0].tolist() == [0, 1, 0, 0, 0] and main[1].tolist() == [0, 0, 1, 0, 0]
    assert np.isnan(sub).all()
    weights = positive_class_weights(sub, cap=10.0)  # no known sub row: every label unseen, so the cap
    assert np.allclose(weights, 10.0)


def test_command_line_form_and_clear_errors(tmp_path: Path) -> None:
    spec = PolaritySet.model_validate("smp2020:/data/virus_train.txt:3000")
    assert (spec.format, spec.path, spec.max_rows) == ("smp2020", Path("/data/virus_train.txt"), 3000)
    assert PolaritySet.model_validate("clue_emotion:valid.txt").max_rows is None
    with pytest.raises(ValueError, match="FORMAT:PATH"):
        PolaritySet.model_validate("virus_train.txt")
    with pytest.raises(FileNotFoundError, match="no such polarity table"):
        polarity_rows(PolaritySet(path=tmp_path / "absent.txt", format="smp2020"), seed=0)
    (tmp_path / "bad.txt").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a smp2020 table"):
        polarity_rows(PolaritySet(path=tmp_path / "bad.txt", format="smp2020"), seed=0)


def test_a_table_cannot_be_both_trained_on_and_evaluated(tmp_path: Path) -> None:
    from training.config import ConfigError, parse_config

    table = str(tmp_path / "usual_eval.jsonl")
    raw = {
        "manual_labels": str(tmp_path / "manual.jsonl"),
        "train_v1": {"enabled": False},
        "train_v2": {"polarity_sets": [f"smp2020:{table}"]},
        "evaluate": {"tables": [table]},
    }
    with pytest.raises(ConfigError, match="cannot measure it"):
        parse_config(raw)
    raw["evaluate"] = {"tables": []}
    assert parse_config(raw).train_v2.polarity_sets[0].format == "smp2020"
