"""Settings is composed of one mixin per concern: every field in exactly one group, each
group's validators and helpers still work on the composed class."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from proxy.settings import DB_FILE_NAME, GROUPS, Settings


def test_every_field_belongs_to_exactly_one_group() -> None:
    counts = Counter(name for group in GROUPS for name in group.field_names)
    assert {n for n, c in counts.items() if c > 1} == set()
    assert set(counts) == set(Settings.model_fields)


def test_settings_inherits_exactly_the_groups() -> None:
    mixins = [base for base in Settings.__bases__ if base is not BaseSettings]
    assert sorted(m.__name__ for m in mixins) == sorted(g.model.__name__ for g in GROUPS)
    assert len({g.title for g in GROUPS}) == len(GROUPS)


def test_fields_run_in_group_order() -> None:
    assert list(Settings.model_fields) == [n for g in GROUPS for n in g.field_names]


def test_group_validators_run_on_settings(tmp_path: Path) -> None:
    settings = Settings(
        teacher_url="http://t/v1/", encoder_url="http://e/v1/", data_dir=tmp_path / "d"
    )
    assert (settings.teacher_url, settings.encoder_url) == ("http://t/v1", "http://e/v1")
    assert settings.db == tmp_path / "d" / DB_FILE_NAME
    assert Settings(db="postgresql://u@h/db").db_is_postgres
    with pytest.raises(ValidationError, match="unknown pass-through endpoint 'bogus'"):
        Settings(passthrough="all,-bogus")


def test_group_helpers_run_on_settings() -> None:
    settings = Settings(
        passthrough="all,-images", api_keys="a, b", model_aliases="x,", shadow_rate=None
    )
    assert "images" not in settings.passthrough_endpoints
    assert "embeddings" in settings.passthrough_endpoints
    assert settings.client_keys == ["a", "b"] and settings.model_alias_list == ["x"]
    assert settings.shadow_rate_for("vote") == 0.05 and settings.effective_shadow_rate == 0.1
    assert Settings(confidence_threshold=-1.0).shadow_rate_for("vote") == 0.0
    assert settings.background_cap(cpu_student=True) == 4
    assert settings.background_cap(cpu_student=False) == 32
