"""SSE streaming on both routes, through the openai SDK and at the byte level."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.fakes import FakeUpstream, fail_connect

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def stream_text(client: Any, **kwargs: Any) -> tuple[str, list[Any], Any]:
    kwargs.setdefault("model", "gpt-4o-mini")
    kwargs.setdefault("messages", MESSAGES)
    raw = client.chat.completions.with_raw_response.create(stream=True, **kwargs)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks, raw.headers


def raw_events(url: str, body: dict[str, Any]) -> list[bytes]:
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        data = b"".join(response.iter_bytes())
    return [e for e in data.split(b"\n\n") if e]


def test_student_route_streams_a_complete_answer(make_proxy: Any) -> None:
    with make_proxy(student=FakeUpstream(default_text="Paris is nice", logprob=-0.01)) as h:
        text, chunks, headers = stream_text(h.client(), stream_options={"include_usage": True})
        assert headers["x-distill-route"] == "student"
        assert text == "Paris is nice"
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-2].choices[0].finish_reason == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
        assert h.student.requests[0]["stream"] is False  # scored in full before the first byte
        row = h.rows(at_least=1)[0]
        assert row["stream"] is True and row["route"] == "student" and row["ttfb_ms"] > 0


def test_teacher_route_relays_the_stream_and_logs_usage(make_proxy: Any) -> None:
    with make_proxy(student=FakeUpstream(logprob=-3.0)) as h:
        text, chunks, headers = stream_text(h.client())
        assert headers["x-distill-route"] == "teacher"
        assert text == "The capital is Paris."
        # the proxy asked for usage; the client did not, so it never sees a usage chunk
        assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
        assert h.teacher.requests[0]["stream_options"] == {"include_usage": True}
        row = h.rows(at_least=1)[0]
        assert row["teacher_text"] == "The capital is Paris."
        assert row["teacher_completion_tokens"] == 4  # never zero for streamed requests
        assert row["status_code"] == 200


def test_stream_ends_with_done_on_both_routes(make_proxy: Any) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    for logprob, route in ((-0.01, "student"), (-3.0, "teacher")):
        with make_proxy(student=FakeUpstream(logprob=logprob)) as h:
            events = raw_events(h.url, body)
            assert events[-1] == b"data: [DONE]"
            first = orjson.loads(events[0].removeprefix(b"data: "))
            assert first["object"] == "chat.completion.chunk", route
            assert all(b'logprobs":{' not in e for e in events)


def test_teacher_stream_cut_ends_with_error_event_then_done(make_proxy: Any) -> None:
    teacher = FakeUpstream(cut_stream_after=3)
    with make_proxy(student=FakeUpstream(logprob=-3.0), teacher=teacher) as h:
        events = raw_events(h.url, {"model": "m", "messages": MESSAGES, "stream": True})
        assert events[-1] == b"data: [DONE]"
        error = orjson.loads(events[-2].removeprefix(b"data: "))
        assert error["error"]["type"] == "upstream_error"
        row = h.rows(at_least=1)[0]
        assert row["status_code"] == 502 and "teacher stream" in row["error"]


def test_teacher_stream_down_before_first_byte_degrades_to_student(make_proxy: Any) -> None:
    teacher = FakeUpstream(script=[fail_connect] * 5)
    student = FakeUpstream(default_text="Lyon?", logprob=-3.0)
    with make_proxy(student=student, teacher=teacher, teacher_retries=1) as h:
        text, _, headers = stream_text(h.client())
        assert text == "Lyon?"
        assert headers["x-distill-degraded"] == "teacher-unavailable"


def test_client_disconnect_mid_stream_still_logs(make_proxy: Any) -> None:
    teacher = FakeUpstream(default_text="one two three four five six", stream_delay=0.2)
    with make_proxy(student=FakeUpstream(logprob=-3.0), teacher=teacher) as h:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        with httpx.stream("POST", f"{h.url}/v1/chat/completions", json=body) as response:
            for _ in response.iter_bytes():
                break  # read one piece, then hang up
        rows = h.rows(at_least=1)
        assert rows and rows[0]["status_code"] == 499
