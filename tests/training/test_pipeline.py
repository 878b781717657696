"""The pipeline is its list of stage modules: each owns its settings and paths, in one shape."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from training.cli import build_parser
from training.commands.options import stage_settings
from training.config import PipelineConfig, parse_config
from training.layout import RunLayout
from training.pipeline import STAGE_NAMES, STAGES, build_stages
from training.stages import llm_label


def _config(tmp_path: Path) -> PipelineConfig:
    return parse_config(
        {
            "run_dir": str(tmp_path / "run"),
            "models_dir": str(tmp_path / "models"),
            "manual_labels": str(tmp_path / "manual.jsonl"),
            "ingest": {"inputs": [str(tmp_path / "raw")]},
            "llm_label": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
            "export": {"fp16": True},
            "evaluate": {"tables": [str(tmp_path / "gold.jsonl")]},
        }
    )


def test_each_stage_module_owns_the_settings_class_of_its_config_section() -> None:
    for stage in STAGES:
        annotation = PipelineConfig.model_fields[stage.SECTION].annotation
        assert stage.Settings is annotation or stage.Settings in get_args(annotation), stage.NAME  # type: ignore[attr-defined]


def test_every_input_is_an_earlier_stage_output_or_a_configured_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    layout = RunLayout(config)
    available = {tmp_path / "raw", tmp_path / "manual.jsonl", tmp_path / "gold.jsonl"}
    for stage in STAGES:
        missing = [path for path in stage.inputs(layout) if path not in available]
        assert not missing, f"{stage.NAME} reads {missing}, which no earlier stage writes"
        available.update(stage.outputs(layout))
    assert [stage.name for stage in build_stages(config)] == list(STAGE_NAMES)


def test_every_stage_has_a_command_and_llm_label_seeds_like_the_others() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(STAGE_NAMES) <= set(commands)
    args = parser.parse_args(["llm-label", "texts.jsonl", "--out", "labels.jsonl", "--base-url", "u", "--model", "m"])
    settings, seed, _preprocessing = stage_settings(args, llm_label)
    assert seed == PipelineConfig.model_fields["seed"].default == 13
    assert settings.batch_size == 50 and settings.model == "m"
