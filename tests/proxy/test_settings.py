"""Settings: env prefix, TOML file, precedence, the OPENAI_API_KEY fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.settings import load_settings


def test_toml_then_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "distill.toml"
    config.write_text('student_url = "http://gpu:8000/v1/"\nconfidence_threshold = -0.9\n')
    settings = load_settings(config)
    assert settings.student_urls == ["http://gpu:8000/v1"]
    assert settings.confidence_threshold == -0.9
    monkeypatch.setenv("DISTILL_CONFIDENCE_THRESHOLD", "-0.1")
    assert load_settings(config).confidence_threshold == -0.1
    assert load_settings(config, confidence_threshold=-2.0).confidence_threshold == -2.0


def test_distill_table_and_env_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[distill]\nteacher_model = "gpt-4.1-mini"\n')
    monkeypatch.setenv("DISTILL_CONFIG", str(config))
    assert load_settings().teacher_model == "gpt-4.1-mini"


def test_teacher_key_falls_back_to_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_TEACHER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-env")
    settings = load_settings()
    assert settings.teacher_api_key is not None
    assert settings.teacher_api_key.get_secret_value() == "sk-from-openai-env"
    assert "sk-from-openai-env" not in repr(settings)
    monkeypatch.setenv("DISTILL_TEACHER_API_KEY", "sk-distill")
    assert load_settings().teacher_api_key.get_secret_value() == "sk-distill"  # type: ignore[union-attr]


def test_several_student_urls_and_client_keys() -> None:
    settings = load_settings(student_url="http://a/v1, http://b/v1/", api_keys="k1,k2")
    assert settings.student_urls == ["http://a/v1", "http://b/v1"]
    assert settings.client_keys == ["k1", "k2"]
