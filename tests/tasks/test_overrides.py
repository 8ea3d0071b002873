"""`[tasks.NAME]` overrides: the model's checks and the resolver (rename, merge, exclude)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from proxy.errors import InvalidRequest
from proxy.settings import Settings, load_settings
from proxy.tasks.config import TaskOverride, TaskOverrides
from proxy.tasks.identity import derive_task
from proxy.tasks.resolve import MASK_CACHE, TaskResolver

OVERRIDES = TypeAdapter(TaskOverrides)


def chat(system: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "q"}],
        **extra,
    }


def resolver(tables: dict[str, Any]) -> TaskResolver:
    return TaskResolver(OVERRIDES.validate_python(tables))


def test_rename_and_merge_by_name() -> None:
    a, b = chat("Classify the intent."), chat("Route the ticket.")
    r = resolver({"intents": {"match": [derive_task(a), derive_task(b), "intent-v1"]}})
    assert r.resolve(None, a).name == "intents"
    assert r.resolve(None, b).name == "intents"
    assert r.resolve(None, a).original == derive_task(a)
    assert r.resolve("intent-v1", chat("anything")).name == "intents"  # a client name merged
    assert r.resolve(None, chat("Translate.")).name == derive_task(chat("Translate."))


def test_prefix_takes_derived_tasks_only_and_the_longest_wins() -> None:
    r = resolver(
        {
            "bank": {"match": ["prefix:You are a banking"]},
            "bank-cards": {"match": ["prefix:You are a banking assistant for cards"]},
        }
    )
    assert r.resolve(None, chat("You are a banking assistant. Be brief.")).name == "bank"
    assert r.resolve(None, chat("You are a banking assistant for cards.")).name == "bank-cards"
    named = r.resolve("mine", chat("You are a banking assistant."))
    assert named.name == "mine" and named.named_by == "client"


def test_exclude_marks_the_task() -> None:
    body = chat("Summarise the medical record.")
    r = resolver({derive_task(body): {"exclude": True}, "kept": {"quality_target": 0.9}})
    assert r.resolve(None, body).excluded
    assert not r.resolve("kept", body).excluded
    assert r.resolve("kept", body).override == TaskOverride(quality_target=0.9)


def test_assign_writes_the_row_even_for_a_refused_name() -> None:
    body = chat("Classify.")
    record: dict[str, Any] = {}
    with pytest.raises(InvalidRequest):
        TaskResolver().assign("not a name", body, record)
    assert record["task"] == derive_task(body)
    TaskResolver().assign("good", body, record)
    assert record["task"] == "good"


def test_lenient_never_raises() -> None:
    r = TaskResolver()
    assert r.lenient("not a name", None).name == "unknown"
    assert r.lenient("ok", None).name == "ok"
    assert r.lenient(None, chat("Classify.")).name == derive_task(chat("Classify."))


@pytest.mark.parametrize(
    "tables",
    [
        {"Bad Name": {}},
        {"a": {"match": ["not a name"]}},
        {"a": {"match": ["prefix:"]}},
        {"a": {"exlude": True}},  # a typo is an error, not a distilled task
        {"a": {"quality_target": 1.5}},
        {"a": {"label_set": ["x", "x"]}},
        {"a": {"label_set": []}},
        {"a": {"validator": "has space"}},
        {"a": {"match": ["t1"]}, "b": {"match": ["t1"]}},  # one entry, two tables
        {"a": {"match": ["b"]}, "b": {"match": ["c"]}},  # a chain
    ],
)
def test_bad_tables_are_refused(tables: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OVERRIDES.validate_python(tables)


def test_a_full_table_loads() -> None:
    tables = OVERRIDES.validate_python(
        {
            "intents": {
                "match": ["auto-gpt-4o-mini-1a2b3c4d", "prefix:You are"],
                "quality_target": 0.9,
                "label_set": [" card_lost ", "refund"],
                "validator": "myapp.checks:is_label",
            }
        }
    )
    table = tables["intents"]
    assert table.names == ("auto-gpt-4o-mini-1a2b3c4d",)
    assert table.prefixes == ("You are",)
    assert table.label_set == ("card_lost", "refund")


def test_masked_prompts_are_cached_within_a_bound() -> None:
    r = TaskResolver()
    names = {r.resolve(None, chat(f"You are agent {i}.")).name for i in range(MASK_CACHE + 10)}
    assert names == {derive_task(chat("You are agent 1."))}  # cached or not, the same task
    assert 0 < len(r._masked) <= MASK_CACHE


def test_tables_load_from_the_toml_config_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "distill.toml"
    config.write_text(
        "[tasks.intents]\n"
        'match = ["auto-gpt-4o-mini-1a2b3c4d", "prefix:You are a banking assistant"]\n'
        "quality_target = 0.9\n"
        'label_set = ["card_lost", "refund"]\n'
        "\n"
        "[tasks.auto-gpt-4o-2c3d4e5f]\n"
        "exclude = true\n"
    )
    monkeypatch.delenv("DISTILL_TASKS", raising=False)
    settings = load_settings(config)
    assert settings.tasks["intents"].quality_target == 0.9
    assert settings.tasks["intents"].prefixes == ("You are a banking assistant",)
    assert settings.tasks["auto-gpt-4o-2c3d4e5f"].exclude
    monkeypatch.setenv("DISTILL_TASKS", '{"faq": {"exclude": true}}')
    assert list(Settings().tasks) == ["faq"]
    config.write_text('[tasks.a]\nmatch = ["b"]\n[tasks.b]\nexclude = true\n')
    monkeypatch.delenv("DISTILL_TASKS")
    with pytest.raises(ValidationError, match="merged into"):
        load_settings(config)
