"""Task identity: the client's name (header, metadata) and the derived one."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.errors import InvalidRequest
from proxy.tasks.identity import client_task, derive_task, schema_digest, system_prompt
from proxy.tasks.masking import mask

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def chat(system: str | None = None, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    return {
        "model": "gpt-4o-mini",
        "messages": [*messages, {"role": "user", "content": "hi"}],
        **extra,
    }


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def test_a_number_in_the_system_prompt_does_not_make_another_task() -> None:
    a = derive_task(chat("You are agent 7. Today is 2026-12-02. Order #4411 for bob@example.com"))
    b = derive_task(chat("You are agent 12. Today is 2026-12-03. Order #97 for eve@corp.org"))
    assert a == b
    assert a != derive_task(chat("You are a translator. Today is 2026-12-02."))


def test_derived_name_is_readable_and_stable() -> None:
    name = derive_task(chat("Classify the intent."))
    # The rule is a contract (the names are in the log and in users' configs): a change
    # of the derivation changes this value and needs a migration of the names.
    assert name == "auto-gpt-4o-mini-065e529b"
    assert name == derive_task(chat("  classify   the INTENT. "))
    long = derive_task({"model": "Org/Some Model:v1 " + "x" * 40, "messages": []})
    assert long.rsplit("-", 1)[0] == "auto-org-some-model-v1-" + "x" * 14  # 32 characters


def test_schema_tools_and_model_make_other_tasks() -> None:
    base = chat("Extract the city.")
    with_schema = chat("Extract the city.", response_format=schema_format(SCHEMA))
    other_schema = chat(
        "Extract the city.",
        response_format=schema_format({**SCHEMA, "required": []}),
    )
    tools = chat("Extract the city.", tools=[{"type": "function", "function": {"name": "f"}}])
    names = {derive_task(b) for b in (base, with_schema, other_schema, tools)}
    assert len(names) == 4
    assert derive_task({**base, "model": "gpt-4o"}).startswith("auto-gpt-4o-")
    assert derive_task({**base, "model": "gpt-4o"}) != derive_task(base)


def test_schema_digest_is_canonical() -> None:
    reordered = {"required": ["city"], "properties": {"city": {"type": "string"}}, "type": "object"}
    assert schema_digest(chat(response_format=schema_format(SCHEMA))) == schema_digest(
        chat(response_format=schema_format(reordered))
    )
    assert schema_digest(chat(response_format={"type": "json_object"})) == "json_object"
    assert schema_digest(chat()) == ""


def test_responses_request_is_the_same_task_as_its_chat_form() -> None:
    responses = {
        "model": "gpt-4o-mini",
        "instructions": "Extract the city.",
        "input": "I live in Paris",
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA}},
    }
    assert system_prompt(responses) == "Extract the city."
    assert derive_task(responses) == derive_task(
        chat("Extract the city.", response_format=schema_format(SCHEMA))
    )


def test_user_messages_do_not_count() -> None:
    a = chat("Classify.")
    b = {**a, "messages": [a["messages"][0], {"role": "user", "content": "something else"}]}
    assert derive_task(a) == derive_task(b)


def test_masking_covers_the_variable_parts() -> None:
    text = (
        'See https://x.io/a?b=1 or mail ann@x.org about "the blue one" on Dec 2, 2026 '
        "at 14:05 (ticket ORD-12345, id 3f2a9c1e7b) - 42 items, 3.5% off"
    )
    assert mask(text) == (
        "see <url> or mail <email> about <quoted> on <date> at <date> "
        "(ticket <id>, id <id>) - <n> items, <n> off"
    )


def test_header_then_metadata_names_the_task() -> None:
    body = chat(metadata={"distill_task": "from-metadata"})
    assert client_task("Intents", body) == "intents"  # stripped and lower-cased
    assert client_task(None, body) == "from-metadata"
    assert client_task("", body) == "from-metadata"  # an empty header is no name
    assert client_task(None, chat()) is None


@pytest.mark.parametrize("bad", ["has space", "a/b", "x" * 65, "-leading", "ünï"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        client_task(bad, chat())
    assert info.value.code == "invalid_task_name"
    assert info.value.param == "x-distill-task"
    with pytest.raises(InvalidRequest) as info:
        client_task(None, chat(metadata={"distill_task": bad}))
    assert info.value.param == "metadata.distill_task"


def test_a_name_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        client_task(None, chat(metadata={"distill_task": 7}))
