from __future__ import annotations

import argparse

import pytest

from service import cli


def test_serve_is_the_default_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_run(args: object) -> int:
        seen["args"] = args
        return 0

    monkeypatch.setattr("service.commands.serve.run", fake_run)  # register() picks it up when main builds the parser
    assert "serve" in cli.build_parser()[1]
    assert cli.main(["--port", "9000", "--models-dir", "elsewhere"]) == 0
    args = seen["args"]
    assert isinstance(args, argparse.Namespace)
    assert args.command == "serve" and args.port == 9000 and str(args.models_dir) == "elsewhere"


def test_bad_settings_exit_with_status_2_and_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DANMAKU_MAX_BATCH_SIZE", "-3")
    assert cli.main(["serve"]) == 2
    assert "DANMAKU_MAX_BATCH_SIZE='-3'" in capsys.readouterr().err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    assert "serve" in capsys.readouterr().out
