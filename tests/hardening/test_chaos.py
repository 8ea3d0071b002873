"""Teacher faults through the real app (fake upstreams, official openai SDK where it fits):
retries as configured, then the documented degraded answer or an OpenAI-format error;
never a 200 with an empty or truncated body passed off as complete.
Extends tests/proxy/test_chat_routing.py and test_streaming.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from bench.soak.load import stream_complete
from tests.fakes import FakeUpstream, completion, error_response, hang, json_response

MESSAGES: Any = [{"role": "user", "content": "What is the capital of France?"}]
UNSURE = -3.0


def create(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, **kwargs
    )


def raw_stream(url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as response:
        return response, response.read()


class _Events(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


def sse(events: list[bytes | dict[str, Any]]) -> httpx.Response:
    parts = [e if isinstance(e, bytes) else b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Events(parts))


def test_retry_after_is_honoured_between_attempts(make_proxy: Any) -> None:
    teacher = FakeUpstream(
        script=[lambda b: error_response(429, "slow", **{"retry-after": "0.4"})] * 2
    )
    with make_proxy(student=FakeUpstream(logprob=UNSURE), teacher=teacher, teacher_retries=3) as h:
        started = time.monotonic()
        raw = create(h.client())
        assert time.monotonic() - started >= 0.8
        assert (
            raw.headers["x-distill-route"] == "teacher" and "x-distill-degraded" not in raw.headers
        )
        assert len(h.teacher.requests) == 3 and h.rows(at_least=1)[0]["teacher_retries"] == 2


def test_retry_after_beyond_the_deadline_is_not_waited_for(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[lambda b: error_response(429, "slow", **{"retry-after": "30"})])
    student = FakeUpstream(default_text="Lyon?", logprob=UNSURE)
    with make_proxy(student=student, teacher=teacher, teacher_deadline=2.0) as h:
        started = time.monotonic()
        raw = create(h.client())
        assert time.monotonic() - started < 1.5
        assert raw.headers["x-distill-degraded"] == "teacher-unavailable"
        assert raw.parse().choices[0].message.content == "Lyon?"
        assert "429" in h.rows(at_least=1)[0]["error"]


def test_persistent_500s_use_every_retry_then_degrade(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[lambda b: error_response(500, "boom")] * 10)
    student = FakeUpstream(default_text="Lyon?", logprob=UNSURE)
    with make_proxy(student=student, teacher=teacher, teacher_retries=2) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "student"
        assert raw.headers["x-distill-degraded"] == "teacher-unavailable"
        assert len(h.teacher.requests) == 3
        row = h.rows(at_least=1)[0]
        assert row["status_code"] == 200 and row["route"] == "student"
        assert row["degraded"] == "teacher-unavailable" and "500" in row["error"]


def test_persistent_500s_without_a_student_answer_are_a_502(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[lambda b: error_response(500, "boom")] * 10)
    with make_proxy(teacher=teacher, teacher_retries=1) as h:
        with pytest.raises(openai.APIStatusError) as info:
            create(h.client(), extra_headers={"x-distill-route": "teacher"})
        assert info.value.status_code == 502
        assert isinstance(info.value.body, dict) and info.value.body["type"] == "upstream_error"
        assert len(h.teacher.requests) == 2 and h.rows(at_least=1)[0]["status_code"] == 502


def test_teacher_hanging_past_the_deadline_is_a_timely_504(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[hang(30)] * 10)
    with make_proxy(
        teacher=teacher, teacher_timeout=0.3, teacher_deadline=1.0, teacher_retries=5
    ) as h:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as info:
            create(h.client(), extra_headers={"x-distill-route": "teacher"})
        assert time.monotonic() - started < 2.5
        assert info.value.status_code == 504
        assert isinstance(info.value.body, dict) and info.value.body["type"] == "timeout"


@pytest.mark.parametrize("cut_after", [0, 1, 5])
def test_cut_teacher_stream_is_never_passed_off_as_complete(
    make_proxy: Any, cut_after: int
) -> None:
    teacher = FakeUpstream(default_text="one two three four five", cut_stream_after=cut_after)
    with make_proxy(student=FakeUpstream(logprob=UNSURE), teacher=teacher) as h:
        response, raw = raw_stream(h.url)
        assert response.status_code == 200  # headers were sent before the cut
        complete, why = stream_complete(raw)
        assert not complete and why == "stream_error_event"
        assert raw.endswith(b"data: [DONE]\n\n")
        assert h.rows(at_least=1)[0]["status_code"] == 502


@pytest.mark.parametrize(
    "events",
    [
        [{"id": "c", "choices": [{"index": 0, "delta": {"content": "Par"}}]}, b"data: [DONE]\n\n"],
        [{"id": "c", "choices": [{"index": 0, "delta": {"content": "Par"}}]}],
        [{"id": "c", "choices": 5}, b"data: [DONE]\n\n"],
        [b"data: {not json\n\n", b"data: [DONE]\n\n"],
        [{"error": {"message": "overloaded"}}, b"data: [DONE]\n\n"],
    ],
    ids=["no-finish-reason", "no-done", "malformed-choices", "invalid-json", "error-event"],
)
def test_broken_teacher_streams_end_with_an_error_event(
    make_proxy: Any, events: list[bytes | dict[str, Any]]
) -> None:
    teacher = FakeUpstream(script=[lambda b: sse(events)])
    with make_proxy(student=FakeUpstream(logprob=UNSURE), teacher=teacher) as h:
        _, raw = raw_stream(h.url)
        assert stream_complete(raw) == (False, "stream_error_event")
        assert raw.endswith(b"data: [DONE]\n\n")
        row = h.rows(at_least=1)[0]
        assert row["status_code"] == 502 and row["error"].startswith("teacher stream")


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b'{"id": "x", "choices": [{"index": 0, "message": {"con'),
        httpx.Response(200, content=b""),
        json_response(200, {"id": "x", "object": "chat.completion", "choices": []}),
        json_response(
            200,
            {
                **completion(""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None},
                        "finish_reason": "stop",
                    }
                ],
            },
        ),
    ],
    ids=["truncated-json", "empty-body", "no-choices", "null-content"],
)
def test_broken_teacher_answers_are_never_an_empty_200(make_proxy: Any, answer: Any) -> None:
    teacher = FakeUpstream(script=[lambda b: answer] * 10)
    with make_proxy(teacher=teacher, teacher_retries=1) as h:
        response = httpx.post(
            f"{h.url}/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES},
            headers={"x-distill-route": "teacher"},
        )
        if response.status_code == 200:
            choices = response.json()["choices"]
            assert choices and choices[0]["message"]["content"], response.text
        else:
            assert response.status_code == 502, response.text
            assert response.json()["error"]["type"] == "upstream_error"
