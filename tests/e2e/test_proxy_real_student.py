"""The proxy in front of a REAL vLLM student (CPU build, default model), openai SDK as client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.app import Transports, create_app
from proxy.settings import Settings
from tests.fakes import FakeUpstream
from tests.server_thread import running

pytestmark = pytest.mark.e2e
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture
def proxy_on_real_vllm(real_vllm: Any, tmp_path: Path) -> Iterator[tuple[str, Any, FakeUpstream]]:
    teacher = FakeUpstream(default_text="The capital of France is Paris.")
    settings = Settings(
        student_url=real_vllm.base_url,
        student_model=real_vllm.model_name,
        teacher_url="http://teacher.test/v1",
        teacher_api_key="sk-test",
        db=tmp_path / "d.duckdb",
        data_dir=tmp_path / "data",
        confidence_threshold=-100.0,  # accept any scored student answer
        student_timeout=120,
        breaker_failures=1,
        breaker_cooldown=1.0,
    )
    app = create_app(settings, Transports(teacher=teacher.transport()))
    with running(app) as url:
        deadline = time.monotonic() + 30
        while not app.state.pool.available() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield url, app, teacher


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=180)


def test_student_answers_with_scored_logprobs(proxy_on_real_vllm: Any) -> None:
    url, app, teacher = proxy_on_real_vllm
    raw = client(url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=QUESTION, max_tokens=24, temperature=0
    )
    answer = raw.parse()
    assert raw.headers["x-distill-route"] == "student"
    confidence = float(raw.headers["x-distill-confidence"])
    assert -20 < confidence <= 0  # a real mean token logprob
    assert "Paris" in (answer.choices[0].message.content or "")
    assert teacher.requests == []
    app.state.writer.flush()
    row = app.state.writer.read(
        lambda c: c.execute("SELECT route, student_text, confidence FROM requests").fetchone()
    )
    assert row[0] == "student" and "Paris" in row[1]
    assert row[2] == pytest.approx(confidence, abs=1e-4)  # the header has 4 decimals


def test_forced_teacher_and_streaming(proxy_on_real_vllm: Any) -> None:
    url, _, teacher = proxy_on_real_vllm
    raw = client(url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=QUESTION, extra_headers={"x-distill-route": "teacher"}
    )
    assert raw.headers["x-distill-route"] == "teacher"
    assert raw.parse().choices[0].message.content == "The capital of France is Paris."
    stream = client(url).chat.completions.create(
        model="gpt-4o-mini",
        messages=QUESTION,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_killed_vllm_sends_traffic_to_teacher_until_it_is_back(
    proxy_on_real_vllm: Any, real_vllm: Any
) -> None:
    url, app, teacher = proxy_on_real_vllm
    real_vllm.kill()
    routes = []
    for _ in range(3):
        raw = client(url).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=QUESTION, max_tokens=8
        )
        routes.append(raw.headers["x-distill-route"])
        assert raw.parse().choices[0].message.content
    assert routes == ["teacher"] * 3
    assert real_vllm.wait_ready(), "the supervisor did not bring vLLM back"
    deadline = time.monotonic() + 60
    route = "teacher"
    while route != "student" and time.monotonic() < deadline:
        time.sleep(1.0)
        raw = client(url).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=QUESTION, max_tokens=8
        )
        route = raw.headers["x-distill-route"]
    assert route == "student"
    assert httpx.get(f"{url}/readyz").status_code == 200
