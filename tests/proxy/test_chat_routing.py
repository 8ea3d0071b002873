"""Chat completions through the real app with the official openai SDK; fake upstreams."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import TEACHER_KEY
from tests.fakes import FakeUpstream, error_response, fail_connect, hang

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def create(client: openai.OpenAI, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "gpt-4o-mini")
    kwargs.setdefault("messages", MESSAGES)
    return client.chat.completions.with_raw_response.create(**kwargs)


def test_confident_student_answers_and_is_logged(make_proxy: Any) -> None:
    with make_proxy(student=FakeUpstream(default_text="Paris", logprob=-0.01)) as h:
        raw = create(h.client())
        answer = raw.parse()
        assert raw.headers["x-distill-route"] == "student"
        assert float(raw.headers["x-distill-confidence"]) == pytest.approx(-0.01)
        assert raw.headers["x-request-id"].startswith("req_")
        assert answer.choices[0].message.content == "Paris"
        assert answer.model == "gpt-4o-mini"
        assert answer.choices[0].logprobs is None  # the client did not ask for them
        assert h.teacher.requests == []
        sent = h.student.requests[0]
        assert sent["model"] == "student-base" and sent["logprobs"] is True
        row = h.rows(at_least=1)[0]
        assert row["route"] == "student" and row["reason"] == "confident"
        assert row["student_text"] == "Paris" and row["teacher_text"] is None
        assert row["scorer"] == "mean_logprob" and row["confidence"] == pytest.approx(-0.01)
        assert row["id"] == raw.headers["x-request-id"]
        assert row["status_code"] == 200 and row["requested_model"] == "gpt-4o-mini"


def test_low_confidence_falls_back_and_logs_the_pair(make_proxy: Any) -> None:
    student = FakeUpstream(default_text="Maybe Lyon", logprob=-2.0)
    with make_proxy(student=student) as h:
        raw = create(h.client(), extra_headers={"x-request-id": "my-req-1"})
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "low_confidence"
        assert raw.headers["x-request-id"] == "my-req-1"
        assert float(raw.headers["x-distill-confidence"]) == pytest.approx(-2.0)
        answer = raw.parse()
        assert answer.choices[0].message.content == "The capital is Paris."
        assert answer.choices[0].logprobs is None  # proxy-added logprobs are removed
        teacher_body = h.teacher.requests[0]
        assert teacher_body["model"] == "gpt-4o-mini"
        assert teacher_body["top_logprobs"] == 5 and teacher_body["logprobs"] is True
        row = h.rows(at_least=1)[0]
        assert row["student_text"] == "Maybe Lyon"
        assert row["teacher_text"] == "The capital is Paris."
        top = json.loads(row["teacher_logprobs_json"])
        assert top[0]["token"] == "The" and len(top[0]["top_logprobs"]) == 5
        assert row["teacher_prompt_tokens"] == 20 and row["teacher_completion_tokens"] == 4


def test_every_client_field_passes_through(make_proxy: Any) -> None:
    with make_proxy(student=FakeUpstream(logprob=-3.0)) as h:
        create(
            h.client(),
            seed=7,
            stop=["\n"],
            temperature=0.3,
            user="u-1",
            metadata={"app": "x"},
            response_format={"type": "text"},
            extra_body={"my_custom_field": {"nested": [1, 2]}, "store": False},
        )
        for sent in (h.student.requests[0], h.teacher.requests[0]):
            assert sent["seed"] == 7 and sent["stop"] == ["\n"] and sent["temperature"] == 0.3
            assert sent["user"] == "u-1" and sent["metadata"] == {"app": "x"}
            assert sent["my_custom_field"] == {"nested": [1, 2]}
            assert sent["response_format"] == {"type": "text"}
            assert sent["messages"] == MESSAGES
        assert h.teacher.headers_seen[0]["authorization"] == f"Bearer {TEACHER_KEY}"
        assert "authorization" not in h.student.headers_seen[0]
        assert h.rows(at_least=1)[0]["store"] is False


def test_client_logprobs_are_kept_when_asked(make_proxy: Any) -> None:
    with make_proxy(student=FakeUpstream(default_text="Paris", logprob=-0.01)) as h:
        answer = create(h.client(), logprobs=True, top_logprobs=2).parse()
        content = answer.choices[0].logprobs.content
        assert content[0].token == "Paris" and len(content[0].top_logprobs) == 2
        assert h.student.requests[0]["top_logprobs"] == 5


def test_n_2_returns_two_choices(make_proxy: Any) -> None:
    with make_proxy(student=FakeUpstream(default_text="Paris", logprob=-0.01)) as h:
        answer = create(h.client(), n=2).parse()
        assert [c.index for c in answer.choices] == [0, 1]
        assert h.student.requests[0]["n"] == 2


def test_tools_go_straight_to_the_teacher(make_proxy: Any) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with make_proxy() as h:
        raw = create(h.client(), tools=tools, tool_choice="auto")
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "unsupported:tools"
        assert h.student.requests == []
        assert h.teacher.requests[0]["tools"] == tools
        assert h.rows(at_least=1)[0]["reason"] == "unsupported:tools"


@pytest.mark.parametrize("route", ["student", "teacher"])
def test_forced_route(make_proxy: Any, route: str) -> None:
    with make_proxy(student=FakeUpstream(logprob=-9.0)) as h:
        raw = create(h.client(), extra_headers={"x-distill-route": route})
        assert raw.headers["x-distill-route"] == route
        assert raw.headers["x-distill-reason"] == "forced"


def test_teacher_429_then_200_is_retried(make_proxy: Any) -> None:
    teacher = FakeUpstream(
        script=[lambda b: error_response(429, "slow down", **{"retry-after": "0.05"})]
    )
    with make_proxy(student=FakeUpstream(logprob=-3.0), teacher=teacher) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "teacher"
        assert len(h.teacher.requests) == 2
        assert h.rows(at_least=1)[0]["teacher_retries"] == 1


def test_teacher_down_serves_student_degraded(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[fail_connect] * 10)
    with make_proxy(
        student=FakeUpstream(default_text="Lyon?", logprob=-3.0), teacher=teacher, teacher_retries=2
    ) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "student"
        assert raw.headers["x-distill-degraded"] == "teacher-unavailable"
        assert raw.parse().choices[0].message.content == "Lyon?"
        row = h.rows(at_least=1)[0]
        assert row["degraded"] == "teacher-unavailable" and "teacher" in row["error"]


def test_teacher_and_student_down_is_a_502(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[fail_connect] * 10)
    student = FakeUpstream(script=[fail_connect] * 10)
    with make_proxy(student=student, teacher=teacher, teacher_retries=1) as h:
        with pytest.raises(openai.APIStatusError) as info:
            create(h.client())
        assert info.value.status_code == 502
        assert info.value.body["type"] == "upstream_error"  # type: ignore[index]
        row = h.rows(at_least=1)[0]
        assert row["status_code"] == 502 and row["route"] == "teacher"


def test_teacher_client_error_is_relayed(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[lambda b: error_response(400, "bad 'stop' value")])
    with make_proxy(student=FakeUpstream(logprob=-3.0), teacher=teacher) as h:
        with pytest.raises(openai.BadRequestError) as info:
            create(h.client())
        assert "bad 'stop' value" in str(info.value)
        assert len(h.teacher.requests) == 1


def test_teacher_refusing_logprobs_is_asked_again_without(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[lambda b: error_response(400, "logprobs are not supported")])
    with make_proxy(student=FakeUpstream(logprob=-3.0), teacher=teacher) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "teacher"
        assert "logprobs" not in h.teacher.requests[1]
        create(h.client())
        assert "logprobs" not in h.teacher.requests[2]  # remembered


def test_hanging_student_times_out_to_teacher(make_proxy: Any) -> None:
    student = FakeUpstream(script=[hang(5)])
    with make_proxy(student=student, student_timeout=0.3) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "student_timeout"


def test_failing_student_opens_the_breaker(make_proxy: Any) -> None:
    student = FakeUpstream(script=[fail_connect] * 3)
    with make_proxy(student=student, breaker_failures=3, breaker_cooldown=60) as h:
        reasons = [create(h.client()).headers["x-distill-reason"] for _ in range(4)]
        assert reasons == ["student_error"] * 3 + ["student_down"]
        assert len(h.student.requests) == 3
        ready = httpx.get(f"{h.url}/readyz")
        assert ready.status_code == 503 and "breaker" in ready.json()["reasons"][0]


def test_background_timeouts_do_not_open_the_breaker(make_proxy: Any) -> None:
    # Cold start: the student's answers are background work nobody waits for; timing out
    # behind each other means busy, not broken, so the breaker stays closed...
    student = FakeUpstream(script=[hang(5)] * 4, default_text="Paris")
    with make_proxy(
        student=student, target_agreement=0.9, student_timeout=0.2, breaker_failures=2
    ) as h:
        for _ in range(4):
            assert create(h.client()).headers["x-distill-reason"] == "uncalibrated"
        deadline = time.monotonic() + 5
        while len(h.rows()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # each row is written once its background answer gave up
        assert len(h.rows()) == 4 and all(r["student_text"] is None for r in h.rows())
        assert h.app.state.pool.available()
        # ...while a request that waits for the student still counts its timeouts.
    with make_proxy(
        student=FakeUpstream(script=[hang(5)] * 2), student_timeout=0.2, breaker_failures=2
    ) as h:
        reasons = [create(h.client()).headers["x-distill-reason"] for _ in range(3)]
        assert reasons == ["student_timeout"] * 2 + ["student_down"]


def test_background_answers_in_flight_are_capped(make_proxy: Any) -> None:
    student = FakeUpstream(script=[hang(1)] * 2, default_text="Paris")
    with make_proxy(student=student, target_agreement=0.9, student_background_max=2) as h:
        for _ in range(4):
            assert create(h.client()).headers["x-distill-reason"] == "uncalibrated"
        assert h.app.state.chat.background_max == 2
        metrics = httpx.get(f"{h.url}/metrics").text
        assert 'kind="background_skipped",upstream="student"} 2.0' in metrics


def test_forced_student_passes_an_open_breaker_and_closes_it(make_proxy: Any) -> None:
    student = FakeUpstream(script=[fail_connect] * 3, default_text="Paris", logprob=-0.01)
    with make_proxy(student=student, breaker_failures=3, breaker_cooldown=60) as h:
        for _ in range(3):
            create(h.client())
        assert create(h.client()).headers["x-distill-reason"] == "student_down"
        # The client named the student: it is asked despite the open breaker...
        forced = create(h.client(), extra_headers={"x-distill-route": "student"})
        assert forced.headers["x-distill-route"] == "student"
        assert forced.parse().choices[0].message.content == "Paris"
        # ...and its success closes the breaker for automatic traffic too.
        assert create(h.client()).headers["x-distill-route"] == "student"
        assert len(h.student.requests) == 5


def test_no_teacher_serves_student_marked_degraded(make_proxy: Any) -> None:
    with make_proxy(
        student=FakeUpstream(default_text="Lyon?", logprob=-3.0),
        teacher_url="https://api.openai.com/v1",
        teacher_api_key=None,
    ) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "student"
        assert raw.headers["x-distill-degraded"] == "no-teacher"
