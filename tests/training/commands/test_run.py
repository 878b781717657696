"""`danmaku-train run` end to end on a tiny config: stages 3-9 produce bundles the service loads."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from service.bundle import load_bundle
from tests.fixtures.labelled import synthetic_records
from training.cli import main
from training.tables import read_labelled, write_labelled

TRAINING = {"epochs": 2, "batch_size": 8, "learning_rate": 0.01, "warmup_ratio": 0.0, "max_sequence_length": 24}


def _config(tmp_path: Path, encoder: Path) -> Path:
    labels = write_labelled(
        tmp_path / "llm_labels.jsonl",
        synthetic_records(100, seed=3) + synthetic_records(60, seed=9, source="corpus_b", prefix="b"),
    )
    manual = tmp_path / "manual.csv"
    rows = synthetic_records(40, seed=4, source="manual", prefix="m")
    manual.write_text(
        "id,text,labels,subcategories\n"
        + "".join(f"{r.id},{r.text},{r.labels[0]},{r.subcategories[0]}\n" for r in rows),
        encoding="utf-8",
    )
    config = {
        "run_dir": str(tmp_path / "run"),
        "models_dir": str(tmp_path / "models"),
        "seed": 5,
        "labels": str(labels),
        "manual_labels": str(manual),
        "train_v1": {
            "encoder": str(encoder),
            "sample_size": 0.4,
            "test_size": 20,
            "test_strata": "source",
            "training": TRAINING,
        },
        "curate": {"agreed_others_rate": 0.5, "disagreed_to_others_rate": 0.1, "v1_sample_as_manual": True},
        "train_v2": {"encoder": str(encoder), "training": {**TRAINING, "early_stopping_patience": 1}},
        "train_info": {"encoder": str(encoder), "training": TRAINING},
        "export": {"int8": False, "parity_rows": 8},
        "evaluate": {"plots": True},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_run_produces_loadable_bundles_then_skips(
    tmp_path: Path, tiny_encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, tiny_encoder_dir)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    first = capsys.readouterr().out
    for stage in ("train-v1", "agree", "curate", "train-v2", "train-info", "export", "evaluate"):
        assert f"{stage:<11} ran" in first, first

    emotion = load_bundle(tmp_path / "models" / "emotion")
    information = load_bundle(tmp_path / "models" / "information")
    assert emotion.metadata.task == "emotion" and information.metadata.task == "information"
    from service.model import OnnxModel

    for bundle in (emotion, information):  # the service's loader checks the graph against bundle.json
        served = OnnxModel.load(bundle)
        assert set(served.predict(served.encode(["前方高能", "这是哪里？"]))[0]) == {
            h.name for h in bundle.metadata.heads
        }
    assert emotion.metadata.head("main").thresholds
    assert emotion.metadata.provenance["git_commit"] is None or len(emotion.metadata.provenance["git_commit"]) >= 40
    assert {entry["role"] for entry in emotion.metadata.provenance["data"]} == {"labels", "manual", "curated"}
    assert all(entry["rows"] > 0 and len(entry["sha256"]) == 64 for entry in emotion.metadata.provenance["data"])
    assert emotion.metadata.provenance["config"]["seed"] == 5

    run = tmp_path / "run"
    assert {p.name for p in (run / "train_v1").glob("*.jsonl")} == {"v1_train.jsonl", "holdout.jsonl", "test.jsonl"}
    agreement = json.loads((run / "agree" / "report.json").read_text())
    assert agreement["rows"] == 160 - 64 - 20
    curated = read_labelled(run / "curate" / "curated.jsonl")
    assert {record.extra["provenance"] for record in curated} >= {"manual"}
    # the 40 manual rows and, standing in for more manual labels, the 64 rows v1 trained on
    assert sum(record.extra["provenance"] == "manual" for record in curated) == 40 + 64
    test_rows = read_labelled(run / "train_v1" / "test.jsonl")
    assert sorted(Counter(record.source for record in test_rows).items()) == [("corpus_b", 10), ("llm", 10)]
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    assert {(row["bundle"], row["table"]) for row in summary["evaluations"]} == {
        ("emotion", "validation"),
        ("emotion", "test"),
        ("information", "validation"),
        ("information", "test"),
    }
    assert (run / "evaluate" / "emotion" / "test" / "pr_main.png").stat().st_size > 1000
    assert "| **macro avg** |" in (run / "evaluate" / "emotion" / "test" / "report.md").read_text()
    served = summary["served"]["test"]  # the label the service returns, both bundles and routing
    assert served["rows"] == 20 and set(served["per_class"]) <= {
        "information",
        "emotions_positive",
        "emotions_negative",
        "social",
        "others",
    }
    assert (run / "evaluate" / "served" / "test" / "served.md").read_text().startswith("# Served labels on test")

    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    second = capsys.readouterr().out
    assert second.count("skipped") == 7 and " ran" not in second


def test_without_v1_the_manual_labels_are_the_curated_set(
    tmp_path: Path, tiny_encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(_config(tmp_path, tiny_encoder_dir).read_text())
    del config["labels"]
    config["train_v1"] = {"enabled": False}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "train-v1    disabled" in out and "agree       disabled" in out and "curate      would-run" in out
    assert main(["run", "--config", str(path), "--to", "curate", "--no-progress"]) == 0
    curated = read_labelled(tmp_path / "run" / "curate" / "curated.jsonl")
    assert len(curated) == 40 and {r.extra["provenance"] for r in curated} == {"manual"}


def test_run_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("labels: x.jsonl\nmanual_labels: m.csv\ncurate: {agreed_rate: 2}\n")
    assert main(["run", "--config", str(path)]) == 2
    assert "curate.agreed_rate" in capsys.readouterr().err


def _xml(path: Path, texts: list[str]) -> Path:
    rows = "".join(
        f'<d p="{index}.0,1,25,16777215,{1443890459 + index},0,ab{index:04d},{1000 + index}">{text}</d>'
        for index, text in enumerate(texts)
    )
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><i><chatid>42</chatid><maxlimit>1000</maxlimit>{rows}</i>',
        encoding="utf-8",
    )
    return path


def test_stages_one_and_two_feed_stage_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.fake_llm import FakeLLM, serve

    texts = [f"哈哈哈{i}" for i in range(6)] + [f"这是哪里？{i}" for i in range(6)] + ["前排"] * 3
    xml = _xml(tmp_path / "video.xml", texts)
    with serve(FakeLLM()) as url:
        config = {
            "run_dir": str(tmp_path / "run"),
            "manual_labels": str(write_labelled(tmp_path / "m.jsonl", synthetic_records(10))),
            "ingest": {"inputs": [str(xml)]},
            "llm_label": {"base_url": url, "model": "fake", "batch_size": 4, "backoff": 0.01},
        }
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        assert main(["run", "--config", str(path), "--to", "llm-label", "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert "ingest      ran" in out and "llm-label   ran" in out
        labels = read_labelled(tmp_path / "run" / "llm_label" / "labels.jsonl")
        assert len(labels) == 13  # unique texts
        assert {record.text for record in labels} == set(texts)
        by_text = {record.text: record for record in labels}
        assert by_text["前排"].labels == ("others",) and by_text["前排"].extra["raw_labels"] == ["Other"]
        assert main(["run", "--config", str(path), "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert "ingest      skipped" in dry and "llm-label   skipped" in dry and "train-v1    would-run" in dry


def test_llm_label_needs_texts() -> None:
    from training.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="llm_label needs texts"):
        parse_config({"manual_labels": "m", "llm_label": {"base_url": "http://x/v1", "model": "m"}})


def test_a_stage_error_is_reported_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = write_labelled(tmp_path / "labels.jsonl", synthetic_records(10))
    config = {"run_dir": str(tmp_path / "run"), "labels": str(labels), "manual_labels": str(labels)}
    config["train_v1"] = {"sample_size": 100}  # type: ignore[assignment]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path)]) == 2
    assert "leave no holdout out of 10 rows" in capsys.readouterr().err
