"""The served-label scorer: figures computed by hand on small decision lists, polarity mapping,
and the command end to end through the service's runtime on tiny bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli import main
from training.evaluation.served import ServedRow, score_served, served_markdown
from training.polarity_sets import polarity_of


def _row(index: int, gold: tuple[str, ...], label: str, *, source: str = "a", confidence: float = 0.5) -> ServedRow:
    return ServedRow(id=str(index), text=f"text {index}", source=source, gold=gold, label=label, confidence=confidence)


def test_figures_per_class_accuracy_and_macro() -> None:
    rows = [
        _row(0, ("information",), "information"),
        _row(1, ("information",), "social", confidence=0.9),
        _row(2, ("social",), "social"),
        _row(3, ("others",), "social", source="b", confidence=0.7),
        _row(4, ("emotions_positive", "social"), "social", source="b"),  # two gold labels: served one counts
    ]
    report = score_served(rows)
    overall = report["overall"]
    assert overall["rows"] == 5 and overall["accuracy"] == pytest.approx(3 / 5)
    social = overall["per_class"]["social"]
    # social: served 4 times, right for rows 2 and 4 -> P 2/4; gold social rows 2, 4 -> R 1
    assert social["precision"] == pytest.approx(0.5) and social["recall"] == pytest.approx(1.0)
    info = overall["per_class"]["information"]
    assert info["precision"] == pytest.approx(1.0) and info["recall"] == pytest.approx(0.5)
    assert overall["per_class"]["others"]["f1"] == 0.0
    # classes with support: information, social, others (emotions_positive's only row is scored as social)
    f1_info, f1_social = 2 / 3, 2 / 3
    assert overall["macro_f1"] == pytest.approx((f1_info + f1_social + 0.0) / 3)
    assert overall["macro_f1_without_others"] == pytest.approx((f1_info + f1_social) / 2)
    assert report["by_source"]["b"]["rows"] == 2 and report["by_source"]["a"]["accuracy"] == pytest.approx(2 / 3)
    assert report["confusion"]["information"] == {"information": 1, "social": 1}
    assert [error["id"] for error in report["worst_errors"]] == ["1", "3"]  # most confident first
    assert "| social | 0.500 | 1.000 |" in served_markdown(report, title="t")


def test_polarity_mapping_leaves_rows_without_polarity_out() -> None:
    assert polarity_of("happy") == ("emotions_positive",)
    assert polarity_of("fear") == ("emotions_negative",)
    assert polarity_of("neutral") == () and polarity_of("surprise") == ()
    rows = [
        _row(0, polarity_of("happy"), "emotions_positive"),
        _row(1, polarity_of("sad"), "information"),
        _row(2, polarity_of("neutral"), "information"),
    ]
    report = score_served(rows)
    assert report["rows_left_out"] == 1 and report["classes"] == ["emotions_positive", "emotions_negative"]
    assert report["overall"]["per_class"]["emotions_negative"]["recall"] == 0.0


def test_nothing_to_score_is_an_error() -> None:
    with pytest.raises(ValueError, match="no row has a gold label"):
        score_served([_row(0, (), "social")])


def test_command_scores_the_served_labels_of_tiny_bundles(tiny_models_dir: Path, tmp_path: Path) -> None:
    table = tmp_path / "gold.jsonl"
    texts = ["哈哈哈", "这是哪里", "前方高能", "主播好", "这首歌叫晴天"]
    labels = ["emotions_positive", "social", "social", "social", "information"]
    table.write_text(
        "".join(
            json.dumps({"id": str(i), "text": t, "labels": [label], "source": "s"}, ensure_ascii=False) + "\n"
            for i, (t, label) in enumerate(zip(texts, labels, strict=True))
        ),
        encoding="utf-8",
    )
    out = tmp_path / "report"
    assert main(["score-served", "--models-dir", str(tiny_models_dir), "--table", str(table), "--out", str(out)]) == 0
    report = json.loads((out / "served.json").read_text(encoding="utf-8"))
    assert report["overall"]["rows"] == 5
    assert sum(report["served_labels"].values()) == 5
    assert (out / "served.md").read_text(encoding="utf-8").startswith("# gold.jsonl")
    assert len((out / "rows.jsonl").read_text(encoding="utf-8").splitlines()) == 5


def test_a_models_dir_with_only_a_joint_emotion_bundle_is_scored(tiny_joint_models_dir: Path, tmp_path: Path) -> None:
    table = tmp_path / "gold.jsonl"
    texts = ["哈哈哈", "这是哪里", "这首歌叫晴天"]
    table.write_text(
        "".join(
            json.dumps({"id": str(i), "text": t, "labels": ["social"], "source": "s"}, ensure_ascii=False) + "\n"
            for i, t in enumerate(texts)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "report"
    argv = ["score-served", "--models-dir", str(tiny_joint_models_dir), "--emotion-bundle", "emotion"]
    assert main([*argv, "--table", str(table), "--out", str(out)]) == 0
    report = json.loads((out / "served.json").read_text(encoding="utf-8"))
    assert report["overall"]["rows"] == 3
    assert report["models"]["information"] is None and report["models"]["versions"] == {"emotion": "test-joint-1"}
