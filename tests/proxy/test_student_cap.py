"""The student's max_tokens cap (issue 14): a CPU student gets one by default, clients may ask
for less, and an answer the cap cut short is not served as a confident answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from proxy.settings import CPU_STUDENT_MAX_TOKENS, Settings
from tests.fakes import FakeUpstream, completion, error_response, json_response
from tests.proxy.test_chat_routing import create
from tests.proxy.test_streaming import stream_text

LONG = " ".join(f"word{i}" for i in range(600))  # ~600 tokens: 30 s on a CPU student


@dataclass
class LimitedStudent(FakeUpstream):
    """Like vLLM: generates `default_text` up to the request's max_tokens, then stops with
    finish_reason `length`."""

    def answer(self, body: dict[str, Any]) -> httpx.Response:
        words = self.default_text.split(" ")
        limits = [body.get(k) for k in ("max_tokens", "max_completion_tokens")]
        limit = min((v for v in limits if isinstance(v, int)), default=len(words))
        cut = limit < len(words)
        payload = completion(
            " ".join(words[:limit]),
            model=str(body.get("model")),
            logprob=self.logprob,
            finish_reason="length" if cut else "stop",
            top_k=int(body.get("top_logprobs") or 0),
        )
        return json_response(200, payload)


def test_cut_short_answer_goes_to_the_teacher(make_proxy: Any) -> None:
    student = LimitedStudent(default_text=LONG, logprob=-0.01)  # confident, but cut short
    with make_proxy(student=student, student_max_tokens=256) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "student_truncated"
        assert raw.parse().choices[0].message.content == "The capital is Paris."
        sent = h.student.requests[0]
        assert sent["max_tokens"] == 256 and sent["max_completion_tokens"] == 256
        assert "max_tokens" not in h.teacher.requests[0]  # the teacher gets the client's ask
        row = h.rows(at_least=1)[0]
        assert (row["route"], row["reason"]) == ("teacher", "student_truncated")
        assert row["student_finish_reason"] == "length"
        assert row["student_completion_tokens"] == 256
        assert row["teacher_text"] == "The capital is Paris."


def test_cut_short_stream_is_the_teachers_stream(make_proxy: Any) -> None:
    student = LimitedStudent(default_text=LONG, logprob=-0.01)
    with make_proxy(student=student, student_max_tokens=64) as h:
        text, _, headers = stream_text(h.client())
        assert headers["x-distill-reason"] == "student_truncated"
        assert text == "The capital is Paris."  # never the first 64 tokens of the student's


def test_a_short_answer_under_the_cap_is_served(make_proxy: Any) -> None:
    with make_proxy(student=LimitedStudent(default_text="Paris", logprob=-0.01),
                    student_max_tokens=256) as h:  # fmt: skip
        raw = create(h.client())
        assert (raw.headers["x-distill-route"], raw.headers["x-distill-reason"]) == (
            "student",
            "confident",
        )
        assert h.student.requests[0]["max_tokens"] == 256
        assert raw.parse().choices[0].finish_reason == "stop"


def test_the_clients_own_smaller_limit_is_kept_and_honoured(make_proxy: Any) -> None:
    student = LimitedStudent(default_text=LONG, logprob=-0.01)
    with make_proxy(student=student, student_max_tokens=256) as h:
        raw = create(h.client(), max_tokens=20)
        # The client asked for 20 tokens and got them: its limit, not the proxy's cap.
        assert (raw.headers["x-distill-route"], raw.headers["x-distill-reason"]) == (
            "student",
            "confident",
        )
        answer = raw.parse()
        assert answer.choices[0].finish_reason == "length"
        assert answer.usage is not None and answer.usage.completion_tokens == 20
        sent = h.student.requests[0]
        assert sent["max_tokens"] == 20 and sent.get("max_completion_tokens") is None
        # A client limit above the cap is lowered to it, and the cut then counts as ours.
        raw = create(h.client(), max_completion_tokens=1000)
        assert h.student.requests[1]["max_completion_tokens"] == 256
        assert raw.headers["x-distill-reason"] == "student_truncated"


def test_without_a_teacher_a_cut_short_answer_is_served_degraded(make_proxy: Any) -> None:
    student = LimitedStudent(default_text=LONG, logprob=-0.01)
    with make_proxy(
        student=student,
        student_max_tokens=128,
        teacher_url="https://api.openai.com/v1",
        teacher_api_key=None,
    ) as h:
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "student"
        assert raw.headers["x-distill-degraded"] == "no-teacher"
        assert raw.parse().choices[0].finish_reason == "length"
        h.student.default_text = "Paris"
        assert "x-distill-degraded" not in create(h.client()).headers  # complete and confident


def test_teacher_down_serves_the_cut_short_answer_degraded(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[lambda body: error_response(503, "overloaded")] * 4)
    student = LimitedStudent(default_text=LONG, logprob=-0.01)
    with make_proxy(student=student, teacher=teacher, student_max_tokens=32,
                    teacher_retries=0) as h:  # fmt: skip
        raw = create(h.client())
        assert raw.headers["x-distill-route"] == "student"
        assert raw.headers["x-distill-degraded"] == "teacher-unavailable"
        assert raw.headers["x-distill-reason"] == "student_truncated"


def test_student_max_tokens_defaults() -> None:
    assert Settings().student_token_cap(cpu_student=True) == CPU_STUDENT_MAX_TOKENS == 256
    assert Settings().student_token_cap(cpu_student=False) is None
    assert Settings(student_max_tokens=100).student_token_cap(cpu_student=False) == 100
    assert Settings(student_max_tokens=0).student_token_cap(cpu_student=True) is None
    description = Settings.model_fields["student_max_tokens"].description or ""
    assert "256" in description and "CPU" in description


def test_an_external_student_is_not_capped_by_default(make_proxy: Any) -> None:
    with make_proxy(student=LimitedStudent(default_text=LONG, logprob=-0.01)) as h:
        raw = create(h.client())  # DISTILL_STUDENT_URL: the proxy cannot tell it is a CPU
        assert raw.headers["x-distill-reason"] == "confident"
        assert "max_tokens" not in h.student.requests[0]
        assert raw.parse().choices[0].finish_reason == "stop"
