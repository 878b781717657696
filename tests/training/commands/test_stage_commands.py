"""Single-stage commands: options generated from the settings, files in and out, clear errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.labelled import synthetic_records
from training.cli import main
from training.records import LabelledText
from training.tables import read_labelled, write_labelled


def _annotated_holdout(path: Path) -> Path:
    records = synthetic_records(100, seed=9)
    annotated = [
        LabelledText(
            id=r.id,
            text=r.text,
            labels=r.labels,
            subcategories=r.subcategories,
            source=r.source,
            extra={"agreed": index % 2 == 0},
        )
        for index, r in enumerate(records)
    ]
    return write_labelled(path, annotated)


def test_curate_command_with_overridden_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holdout = _annotated_holdout(tmp_path / "holdout.jsonl")
    args = ["curate", "--holdout", str(holdout), "--out", str(tmp_path / "out"), "--seed", "3"]
    assert main([*args, "--agreed-others-rate", "0.5", "--disagreed-to-others-rate", "0.2"]) == 0
    curated = read_labelled(tmp_path / "out" / "curated.jsonl")
    # 50 agreed rows: 40 non-others, 10 others (rate 0.5 -> 5); 50 disagreed (rate 0.2 -> 10)
    assert Counter(r.extra["provenance"] for r in curated) == {
        "agreed": 40,
        "agreed_others": 5,
        "disagreed_to_others": 10,
    }
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["settings"]["agreed_others_rate"] == 0.5 and report["seed"] == 3
    assert "| disagreed_to_others | 50 | 0.20 | 10 |" in (tmp_path / "out" / "report.md").read_text()
    assert "curated 55 rows" in capsys.readouterr().out


def test_commands_report_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = write_labelled(tmp_path / "plain.jsonl", synthetic_records(5))
    assert main(["curate", "--holdout", str(plain), "--out", str(tmp_path / "o")]) == 2
    assert "lack the 'agreed' column" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"curate\.agreed_rate"):
        main(["curate", "--holdout", str(plain), "--out", str(tmp_path / "o"), "--agreed-rate", "7"])


def test_export_then_evaluate_with_tuning(
    tmp_path: Path, trained_model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    validation = write_labelled(tmp_path / "validation.jsonl", synthetic_records(40, seed=51))
    test_table = write_labelled(tmp_path / "test.jsonl", synthetic_records(30, seed=52))
    bundle = tmp_path / "models" / "emotion"
    assert (
        main(
            [
                "export",
                "--model",
                str(trained_model_dirs["emotion"]),
                "--out",
                str(bundle),
                "--validation",
                str(validation),
                "--data",
                str(validation),
                "--no-int8",
            ]
        )
        == 0
    )
    assert not (tmp_path / "models" / "emotion-int8").exists()
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(bundle),
                "--table",
                str(test_table),
                "--validation",
                str(validation),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["rows"] == 30 and report["model"]["kind"] == "bundle"
    main_head = report["heads"]["main"]
    assert set(main_head["at"]) == {"default", "model", "tuned"}
    assert main_head["confusion"]["rows"] == 30
    assert len(main_head["sweep"]["social"]) == 19
    for name in ("pr_main.png", "sweep_main.png", "pr_sub.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    assert "macro-F1" in capsys.readouterr().out


def test_evaluate_scores_a_joint_bundles_information_head_on_its_own_rows(
    tmp_path: Path, tiny_joint_models_dir: Path
) -> None:
    records = synthetic_records(30, seed=53)
    table = write_labelled(tmp_path / "test.jsonl", records)
    out = tmp_path / "eval"
    bundle = tiny_joint_models_dir / "emotion"
    assert main(["evaluate", "--model", str(bundle), "--table", str(table), "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["heads"]) == {"main", "sub", "information"}
    assert report["heads"]["main"]["rows_scored"] == 30
    assert 0 < report["heads"]["information"]["rows_scored"] < 30  # information vs the routed rows only
    assert (out / "pr_information.png").stat().st_size > 0
