"""Structured outputs against the REAL vLLM student (CPU build, default model): decoding
is constrained to the request's schema (vLLM `structured_outputs`), and an answer is
served by the student only when it parses and validates (issue 13)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from proxy.app import Transports, create_app
from proxy.settings import Settings
from tests.dropin.fake_teacher import FakeTeacher
from tests.server_thread import running

pytestmark = pytest.mark.e2e
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in JSON."}]
TEACHER_JSON = '{"capital": "Paris", "sure": true}'


class Capital(BaseModel):
    # A closed set and a boolean: a 135M model cannot ramble inside this schema.
    capital: Literal["Paris", "Berlin", "Madrid", "Rome"]
    sure: bool


@pytest.fixture
def proxy(real_vllm: Any, tmp_path: Path) -> Iterator[tuple[openai.OpenAI, Any, FakeTeacher]]:
    teacher = FakeTeacher(default_text=TEACHER_JSON, responses_text=TEACHER_JSON)
    settings = Settings(
        student_url=real_vllm.base_url,
        student_model=real_vllm.model_name,
        teacher_url="http://teacher.test/v1",
        teacher_api_key="sk-test",
        db=tmp_path / "d.duckdb",
        data_dir=tmp_path / "data",
        confidence_threshold=-100.0,  # any scored answer: only the schema check decides
        student_timeout=120,
    )
    app = create_app(settings, Transports(teacher=teacher.transport()))
    with running(app) as url:
        deadline = time.monotonic() + 30
        while not app.state.pool.available() and time.monotonic() < deadline:
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=180)
        yield client, app, teacher


def rows(app: Any) -> list[dict[str, Any]]:
    app.state.writer.flush()

    def query(conn: Any) -> list[dict[str, Any]]:
        cur = conn.execute("SELECT * FROM requests ORDER BY created_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    return app.state.writer.read(query)  # type: ignore[no-any-return]


def test_schema_constrained_student_answer_is_served(proxy: Any, record_numbers: Any) -> None:
    client, app, teacher = proxy
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.parse(
        model="gpt-4o-mini",
        messages=QUESTION,
        response_format=Capital,
        max_tokens=40,
        temperature=0,
    )
    record_numbers({"structured_student_answer_s": time.monotonic() - started})
    parsed = raw.parse().choices[0].message.parsed
    assert raw.headers["x-distill-route"] == "student", raw.headers.get("x-distill-reason")
    assert isinstance(parsed, Capital)
    assert teacher.requests == []
    (row,) = rows(app)
    assert (row["route"], row["reason"], row["endpoint"]) == (
        "student",
        "confident",
        "/v1/chat/completions",
    )
    jsonschema.validate(json.loads(row["student_text"]), Capital.model_json_schema())


def test_json_object_mode_serves_only_json(proxy: Any) -> None:
    client, app, _ = proxy
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            response_format={"type": "json_object"},
            max_tokens=48,
            temperature=0,
        )
        content = raw.parse().choices[0].message.content or ""
        assert isinstance(json.loads(content), dict)  # whichever route served it
    for row in rows(app):
        if row["route"] == "student":
            assert isinstance(json.loads(row["student_text"]), dict)
        else:  # the grammar ran out of tokens: never served as JSON
            assert row["reason"] == "invalid_structured_output"
            assert row["teacher_text"] == TEACHER_JSON


def test_responses_parse_with_the_real_student(proxy: Any) -> None:
    client, app, _ = proxy
    parsed = client.responses.parse(
        model="gpt-4o-mini",
        input="What is the capital of France? Answer in JSON.",
        text_format=Capital,
        max_output_tokens=40,
        temperature=0,
    )
    assert isinstance(parsed.output_parsed, Capital)
    (row,) = rows(app)
    assert row["endpoint"] == "/v1/responses"
    assert row["route"] == "student" or row["reason"] == "invalid_structured_output"
