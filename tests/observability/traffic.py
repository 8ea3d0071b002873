"""Drives a known mix of requests through a proxy with fake upstreams."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ProxyHarness
from tests.fakes import completion, error_response, json_response

MODEL = "gpt-4o-mini"  # $0.15 / $0.60 per 1M tokens
QUESTION: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]


def unsure_student(body: dict[str, Any]) -> httpx.Response:
    top_k = int(body.get("top_logprobs") or 0)
    return json_response(200, completion("Maybe Lyon", logprob=-3.0, top_k=top_k))


def drive(h: ProxyHarness, rounds: int = 1) -> dict[str, int]:
    """Per round: 2 confident student answers (one streamed), 1 low-confidence fallback,
    1 forced streamed teacher answer, 1 teacher answer after a retried 500."""
    client = h.client()
    counts = {"student": 0, "teacher": 0}
    for _ in range(rounds):
        client.chat.completions.create(model=MODEL, messages=QUESTION)
        stream = client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        h.student.script.append(unsure_student)
        client.chat.completions.create(model=MODEL, messages=QUESTION)
        stream = client.chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            stream=True,
            extra_headers={"x-distill-route": "teacher"},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        h.teacher.script.append(lambda body: error_response(500, "try again"))
        client.chat.completions.create(
            model=MODEL, messages=QUESTION, extra_headers={"x-distill-route": "teacher"}
        )
        counts["student"] += 2
        counts["teacher"] += 3
    h.flush()
    return counts
