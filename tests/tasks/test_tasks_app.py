"""Tasks through the real app (fake upstreams) and the official `openai` SDK: naming by
header and metadata, the 400 on a bad name, derived tasks, overrides (rename, merge,
exclude), the `task` column of every row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from proxy.tasks.identity import derive_task
from tests.observability.traffic import MODEL, unsure_student
from tests.tasks.helpers import SYSTEM_A, SYSTEM_B, chat_body, messages


def test_header_metadata_and_derived_tasks_are_logged(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        client = h.client()
        client.chat.completions.create(
            model=MODEL, messages=messages(SYSTEM_A), extra_headers={"x-distill-task": "Intents"}
        )
        client.chat.completions.create(
            model=MODEL, messages=messages(SYSTEM_A), metadata={"distill_task": "from-meta"}
        )
        client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_A))
        client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_A, number=99))
        client.responses.create(
            model=MODEL, instructions=SYSTEM_A, input="hi", extra_headers={"x-distill-task": "r1"}
        )
        client.responses.create(model=MODEL, instructions=SYSTEM_B, input="hi")
        rows = h.rows()
    derived = derive_task(chat_body(SYSTEM_A))
    assert [r["task"] for r in rows] == [
        "intents",
        "from-meta",
        derived,
        derived,  # another number in the system prompt: the same task
        "r1",
        derive_task(chat_body(SYSTEM_B)),  # a Responses request: same rule as its chat form
    ]
    assert [r["endpoint"] for r in rows][-2:] == ["/v1/responses"] * 2


@pytest.mark.parametrize("where", ["header", "metadata"])
def test_a_bad_task_name_is_a_400_and_still_has_a_row(
    make_proxy: Callable[..., Any], where: str
) -> None:
    with make_proxy() as h:
        kwargs: dict[str, Any] = (
            {"extra_headers": {"x-distill-task": "no spaces please"}}
            if where == "header"
            else {"metadata": {"distill_task": "no/slash"}}
        )
        with pytest.raises(openai.BadRequestError) as info:
            h.client().chat.completions.create(model=MODEL, messages=messages(SYSTEM_A), **kwargs)
        assert info.value.code == "invalid_task_name"
        body = info.value.body
        assert isinstance(body, dict) and body["type"] == "invalid_request_error"
        assert body["param"] == ("x-distill-task" if where == "header" else "metadata.distill_task")
        with pytest.raises(openai.BadRequestError):
            h.client().responses.create(
                model=MODEL, input="hi", extra_headers={"x-distill-task": "x" * 65}
            )
        rows = h.rows()
        assert h.student.requests == [] and h.teacher.requests == []  # refused before any call
    assert [(r["status_code"], r["error_code"], r["route"]) for r in rows] == [
        (400, "invalid_task_name", "none")
    ] * 2
    assert rows[0]["task"] == derive_task(chat_body(SYSTEM_A))


def test_rename_and_merge_through_the_app(make_proxy: Callable[..., Any]) -> None:
    a, b = derive_task(chat_body(SYSTEM_A)), derive_task(chat_body(SYSTEM_B))
    with make_proxy(tasks={"support": {"match": [a, b, "old-name"]}}) as h:
        client = h.client()
        client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_A))
        client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_B))
        client.chat.completions.create(
            model=MODEL, messages=messages("Other."), extra_headers={"x-distill-task": "old-name"}
        )
        client.chat.completions.create(model=MODEL, messages=messages("Translate."))
        rows = h.rows()
    assert [r["task"] for r in rows] == [
        "support",
        "support",
        "support",
        derive_task(chat_body("Translate.")),
    ]


def test_an_excluded_task_always_goes_to_the_teacher(make_proxy: Callable[..., Any]) -> None:
    tables = {"private": {"match": ["prefix:You read medical"], "exclude": True}}
    with make_proxy(tasks=tables) as h:
        client = h.client()
        sent = messages("You read medical records. Patient 12.")
        plain = client.chat.completions.with_raw_response.create(model=MODEL, messages=sent)
        forced = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=sent, extra_headers={"x-distill-route": "student"}
        )
        streamed = client.chat.completions.create(model=MODEL, messages=sent, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        served = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages(SYSTEM_A)
        )
        reply = client.responses.with_raw_response.create(
            model=MODEL, instructions="You read medical records.", input="hi"
        )
        rows = h.rows()
        student_calls = len(h.student.requests)
    for resp in (plain, forced):
        assert resp.headers["x-distill-route"] == "teacher"
        assert resp.headers["x-distill-reason"] == "task_excluded"
        assert resp.parse().choices[0].message.content == "The capital is Paris."
    assert served.headers["x-distill-route"] == "student"
    assert reply.headers["x-distill-reason"] == "task_excluded"
    assert student_calls == 1  # only the request of the other task asked the student
    assert [(r["task"], r["route"], r["reason"]) for r in rows] == [
        ("private", "teacher", "task_excluded"),
        ("private", "teacher", "task_excluded"),
        ("private", "teacher", "task_excluded"),
        (derive_task(chat_body(SYSTEM_A)), "student", "confident"),
        ("private", "teacher", "task_excluded"),
    ]
    assert all(r["student_text"] is None for r in rows if r["task"] == "private")


def test_refused_requests_have_a_task_and_relayed_calls_none(
    make_proxy: Callable[..., Any],
) -> None:
    with make_proxy(api_keys="sk-client-1", limit_rpm=2) as h:
        base = f"{h.url}/v1/chat/completions"
        body = chat_body(SYSTEM_A)
        assert httpx.post(base, json=body, headers={"x-distill-task": "kept"}).status_code == 401
        assert httpx.post(base, json=body).status_code == 401  # the body is not read
        client = h.client(api_key="sk-client-1")
        client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi")
        client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_A))
        with pytest.raises(openai.RateLimitError):  # refused by the limits, before the service
            client.chat.completions.create(model=MODEL, messages=messages(SYSTEM_B))
        rows = h.rows()
    assert [(r["status_code"], r["task"]) for r in rows] == [
        (401, "kept"),
        (401, "unknown"),
        (200, None),  # a relayed call belongs to no task
        (200, derive_task(chat_body(SYSTEM_A))),
        (429, derive_task(chat_body(SYSTEM_B))),
    ]


def test_unsure_student_row_keeps_its_task(make_proxy: Callable[..., Any]) -> None:
    with make_proxy() as h:
        h.student.script.append(unsure_student)
        resp = h.client().chat.completions.with_raw_response.create(
            model=MODEL, messages=messages(SYSTEM_A), extra_headers={"x-distill-task": "t"}
        )
        rows = h.rows()
    assert resp.headers["x-distill-reason"] == "low_confidence"
    assert rows[0]["task"] == "t" and rows[0]["student_text"] == "Maybe Lyon"
