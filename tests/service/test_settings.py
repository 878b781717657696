from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.routing import RoutingPolicy
from service.settings import Settings, SettingsError, env_name, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings()
    assert settings.models_dir == Path("models")
    assert settings.precision_threshold == 0.8 and settings.recall_threshold == 0.3
    assert settings.routed_labels == ["others", "social"]
    assert settings.max_comments_per_request == 256
    policy = RoutingPolicy.from_settings(settings)
    assert policy.threshold("precision") == 0.8 and policy.threshold("recall") == 0.3
    assert policy.threshold(None) == 0.8 and policy.threshold("recall", 0.5) == 0.5


def test_every_setting_is_read_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANMAKU_MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("DANMAKU_ROUTED_LABELS", "others, social ,emotions_negative")
    monkeypatch.setenv("DANMAKU_PRECISION_THRESHOLD", "0.9")
    settings = load_settings(port=9001)
    assert settings.max_batch_size == 7
    assert settings.routed_labels == ["others", "social", "emotions_negative"]
    assert settings.precision_threshold == 0.9
    assert settings.port == 9001


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANMAKU_PORT", "tcp://10.0.0.1:8000")  # what Kubernetes injects for a Service "danmaku"
    assert load_settings(port=8000).port == 8000


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DANMAKU_MAX_BATCH_SIZE", "0", "DANMAKU_MAX_BATCH_SIZE='0'"),
        ("DANMAKU_PRECISION_THRESHOLD", "1.5", "DANMAKU_PRECISION_THRESHOLD='1.5'"),
        ("DANMAKU_EXECUTION_PROVIDER", "rocm", "DANMAKU_EXECUTION_PROVIDER='rocm'"),
        ("DANMAKU_MAX_WAIT_MS", "soon", "DANMAKU_MAX_WAIT_MS='soon'"),
        ("DANMAKU_RECALL_THRESHOLD", "0.95", "DANMAKU_RECALL_THRESHOLD=0.95 is above DANMAKU_PRECISION_THRESHOLD"),
        ("DANMAKU_MAX_QUEUE_SIZE", "10", "DANMAKU_MAX_QUEUE_SIZE=10 is below"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_the_token_comes_from_the_setting_or_a_file(tmp_path: Path) -> None:
    assert Settings().bearer_token() is None
    assert Settings(auth_token="abc").bearer_token() == "abc"
    secret = tmp_path / "token"
    secret.write_text("from-file\n", encoding="utf-8")
    assert Settings(auth_token_file=secret).bearer_token() == "from-file"
    with pytest.raises(SettingsError, match=r"DANMAKU_AUTH_TOKEN_FILE=.*cannot read it"):
        Settings(auth_token_file=tmp_path / "missing").bearer_token()
    secret.write_text("  \n", encoding="utf-8")
    with pytest.raises(SettingsError, match="empty"):
        Settings(auth_token_file=secret).bearer_token()
    with pytest.raises(SettingsError, match="not both"):
        load_settings(auth_token="a", auth_token_file=secret)


def test_a_token_value_never_appears_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(auth_token=["not", "a", "string"])
    assert "not" not in str(caught.value).replace("DANMAKU_AUTH_TOKEN=<secret>", "")


def test_unknown_variables_are_warned_about(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DANMAKU_MAX_BATCH_SZE", "8")
    load_settings()
    assert "DANMAKU_MAX_BATCH_SZE (did you mean DANMAKU_MAX_BATCH_SIZE?)" in caplog.text


def test_every_setting_is_in_the_documentation_table() -> None:
    documented = set(re.findall(r"`(DANMAKU_[A-Z0-9_]+)`", DOCS.read_text(encoding="utf-8")))
    missing = sorted(env_name(name) for name in Settings.model_fields if env_name(name) not in documented)
    assert not missing, f"docs/serving.md lacks {missing}"
