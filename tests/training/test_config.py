from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(path.name for path in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(REPO / "configs" / name)
    assert config.curate.agreed_others_rate == 0.15
    assert config.curate.disagreed_to_others_rate == 0.05


def test_reference_defaults() -> None:
    config = parse_config({"labels": "labels.jsonl", "manual_labels": "manual.csv"})
    assert config.train_v1.sample_size == 100_000
    assert config.train_v1.encoder == "bert-base-chinese"
    assert config.train_info.encoder == "hfl/chinese-roberta-wwm-ext"
    assert config.train_v2.training.learning_rate == 2e-5
    assert config.train_v2.training.early_stopping_patience == 2
    assert config.train_v1.training.dropout == 0.3


def test_a_partial_section_keeps_the_stage_defaults() -> None:
    config = parse_config({"labels": "x.jsonl", "manual_labels": "m.csv", "train_v2": {"training": {"epochs": 9}}})
    assert config.train_v2.training.epochs == 9
    assert config.train_v2.training.early_stopping_patience == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"labels": "x", "manual_labels": "m", "curate": {"agreed_others_rate": 1.5}}, r"curate\.agreed_others_rate"),
        ({"labels": "x", "manual_labels": "m", "train_v1": {"sample_sise": 10}}, r"train_v1\.sample_sise: Extra"),
        ({"labels": "x", "manual_labels": "m", "train_v2": {"training": {"epochs": 0}}}, r"train_v2\.training\.epochs"),
        ({"manual_labels": "m"}, "set 'labels'"),
        ({"labels": "x"}, "manual_labels' is not set"),
    ],
)
def test_bad_values_name_their_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="test.yaml")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_the_joint_model_replaces_the_information_model() -> None:
    base = {"labels": "x.jsonl", "manual_labels": "m.csv", "train_v2": {"information_head": True}}
    with pytest.raises(ConfigError, match=r"train_v2\.information_head is true .* set train_info\.enabled: false"):
        parse_config(base, source="test.yaml")
    config = parse_config({**base, "train_info": {"enabled": False}})
    assert config.serves_information and config.information_negatives == "routed"
    from training.stages import export

    assert export.bundle_names(config) == ["emotion"]  # one bundle: no information bundle is exported
