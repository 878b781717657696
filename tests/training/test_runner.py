"""The stage runner with fake stages: skip when unchanged, rerun on changes, resume after a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training.runner import PipelineError, Stage, StageRunner


class Boom(Exception):
    pass


class Pipeline:
    """Two file stages: upper-case a text file, then count its characters."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = root / "source.txt"
        self.source.write_text("hello")
        self.settings: dict[str, Any] = {"suffix": "!"}
        self.calls: list[str] = []
        self.fail_in: str | None = None

    def stages(self) -> list[Stage]:
        upper, count = self.root / "run" / "upper.txt", self.root / "run" / "count.json"

        def run_upper(fingerprint: str) -> None:
            self.calls.append("upper")
            if self.fail_in == "upper":
                raise Boom
            upper.parent.mkdir(parents=True, exist_ok=True)
            upper.write_text(self.source.read_text().upper() + self.settings["suffix"])

        def run_count(fingerprint: str) -> None:
            self.calls.append("count")
            if self.fail_in == "count":
                raise Boom
            count.write_text(json.dumps({"chars": len(upper.read_text())}))

        return [
            Stage("upper", "upper", lambda: dict(self.settings), lambda: [self.source], lambda: [upper], run_upper),
            Stage("count", "count", dict, lambda: [upper], lambda: [count], run_count),
            Stage("off", "off", dict, list, list, lambda fp: self.calls.append("off"), enabled=False),
        ]

    def run(self, **options: Any) -> dict[str, str]:
        outcomes = StageRunner(self.root / "run").run(self.stages(), **options)
        return {outcome.name: outcome.status for outcome in outcomes}


def test_second_run_skips_everything(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    assert pipeline.run() == {"upper": "ran", "count": "ran", "off": "disabled"}
    assert pipeline.run() == {"upper": "skipped", "count": "skipped", "off": "disabled"}
    assert pipeline.calls == ["upper", "count"]
    stamp = json.loads((tmp_path / "run" / "stamps" / "upper.json").read_text())
    assert stamp["inputs"] and stamp["outputs"] and stamp["settings"] == {"suffix": "!"}


def test_a_config_change_reruns_the_stage_and_what_its_output_changed(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.run()
    pipeline.settings["suffix"] = "?"  # same length: count's input changes, its output does not
    assert pipeline.run() == {"upper": "ran", "count": "ran", "off": "disabled"}
    pipeline.source.write_text("hello")  # rewritten with the same content: nothing to do
    assert pipeline.run() == {"upper": "skipped", "count": "skipped", "off": "disabled"}


def test_an_input_content_change_or_a_tampered_output_reruns(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.run()
    pipeline.source.write_text("bye")
    assert pipeline.run()["upper"] == "ran"
    (tmp_path / "run" / "count.json").write_text("{}")
    assert pipeline.run() == {"upper": "skipped", "count": "ran", "off": "disabled"}
    (tmp_path / "run" / "count.json").unlink()
    assert pipeline.run()["count"] == "ran"


def test_a_crash_resumes_at_the_failed_stage(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.fail_in = "count"
    with pytest.raises(Boom):
        pipeline.run()
    pipeline.fail_in = None
    pipeline.calls.clear()
    assert pipeline.run() == {"upper": "skipped", "count": "ran", "off": "disabled"}
    assert pipeline.calls == ["count"]


def test_from_to_force_and_dry_run(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    assert pipeline.run(dry_run=True) == {"upper": "would-run", "count": "would-run", "off": "disabled"}
    assert pipeline.calls == []
    assert pipeline.run(stop="upper") == {"upper": "ran"}
    assert pipeline.run(start="count") == {"count": "ran", "off": "disabled"}
    assert pipeline.run(force=["upper"])["upper"] == "ran"
    pipeline.settings["suffix"] = "??"
    assert pipeline.run(dry_run=True) == {"upper": "would-run", "count": "would-run", "off": "disabled"}
    with pytest.raises(PipelineError, match="unknown stage 'nope'"):
        pipeline.run(start="nope")


def test_a_missing_input_is_named(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    pipeline.source.unlink()
    with pytest.raises(PipelineError, match=r"stage 'upper': input .*source\.txt does not exist"):
        pipeline.run()


def test_hashes_are_cached_across_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.hashing

    pipeline = Pipeline(tmp_path)
    pipeline.run()
    assert (tmp_path / "run" / "stamps" / "hashes.json").is_file()
    hashed: list[Path] = []
    real = training.hashing.sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(training.hashing, "sha256_of", counting)
    assert pipeline.run()["count"] == "skipped"
    assert hashed == []  # nothing changed: every digest came from the cache
    pipeline.source.write_text("other")
    assert pipeline.run()["upper"] == "ran"
    assert pipeline.source in hashed
