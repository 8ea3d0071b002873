"""The refactored Settings keeps the contract recorded before the split: same fields, env
names, defaults, types and bounds (tests/settings/contract.json)."""

from __future__ import annotations

import json

import pytest
from pydantic_settings import EnvSettingsSource

from proxy.settings import Settings
from tests.settings.contract import SNAPSHOT, contract


def test_settings_match_the_recorded_contract() -> None:
    expected = json.loads(SNAPSHOT.read_text())
    actual = contract()
    assert actual["config"] == expected["config"]
    assert sorted(actual["fields"]) == sorted(expected["fields"]), "a field was added or lost"
    changed = {
        name: {"recorded": want, "now": actual["fields"][name]}
        for name, want in expected["fields"].items()
        if actual["fields"][name] != want
    }
    assert changed == {}


def test_every_recorded_env_name_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot's env names are the ones pydantic-settings really looks up."""
    recorded = json.loads(SNAPSHOT.read_text())["fields"]
    for name, entry in recorded.items():
        for other in entry["env"]:
            monkeypatch.delenv(other, raising=False)
        for env in entry["env"]:
            # JSON, so that dict/list/model fields parse; simple fields take it as text.
            monkeypatch.setenv(env, json.dumps(entry["default"]))
            found = EnvSettingsSource(Settings)()
            monkeypatch.delenv(env)
            # A field with aliases comes back under an alias, the others under their name.
            assert set(found) & {name, *entry["env"]}, f"{env} does not set {name}"


def test_an_unprefixed_name_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDENT_TIMEOUT", "7")
    monkeypatch.delenv("DISTILL_STUDENT_TIMEOUT", raising=False)
    assert "student_timeout" not in EnvSettingsSource(Settings)()
