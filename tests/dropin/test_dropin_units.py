"""The pieces behind the drop-in contract: request ids, DISTILL_PASSTHROUGH, the
Responses conversion, the structured-output check, request attempts in the log, and
migration 3 on an existing log file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import ValidationError

from proxy.logstore.schema import MIGRATIONS, REQUEST_COLUMNS, migrate
from proxy.logstore.writer import LogWriter
from proxy.request_ids import MAX_REQUEST_ID, check_request_id
from proxy.serving.responses_convert import chat_request, response_events, to_response
from proxy.serving.structured import StructuredSpec, answer_problem, structured_spec
from proxy.settings import PASSTHROUGH_ENDPOINTS, Settings
from tests.fakes import completion


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("order(42), try #1; ok", True),
        ("x" * MAX_REQUEST_ID, True),
        ("x" * (MAX_REQUEST_ID + 1), False),
        ("", False),
        ("tab\there", False),
        ("café", False),
    ],
)
def test_request_ids_are_kept_or_refused(value: str, kept: bool) -> None:
    assert (check_request_id(value) is None) is kept


def test_passthrough_setting(tmp_path: Path) -> None:
    def names(value: str) -> frozenset[str]:
        return Settings(passthrough=value, data_dir=tmp_path).passthrough_endpoints

    assert names("all") == frozenset(PASSTHROUGH_ENDPOINTS)
    assert names("none") == frozenset()
    assert names("embeddings, files") == {"embeddings", "files"}
    assert "images" not in names("all,-images,-audio") and "files" in names("all,-images")
    with pytest.raises(ValidationError, match="unknown pass-through endpoint"):
        names("embedings")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools"),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input_parts"),
        ({"input": [{"type": "function_call_output", "output": "1"}]}, "input_items"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "text": {"format": {"type": "grammar"}}}, "text_format"),
    ],
)
def test_responses_the_student_cannot_answer(body: dict[str, Any], why: str) -> None:
    assert chat_request({"model": "m", **body}) == (None, why)


def test_responses_request_as_chat_and_back() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Capital?"},
        ],
        "max_output_tokens": 20,
        "text": {"format": {"type": "json_schema", "name": "c", "schema": {"type": "object"}}},
    }
    chat, why = chat_request(body)
    assert why is None and chat is not None
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "user"]
    assert chat["max_tokens"] == 20
    assert chat["response_format"]["json_schema"]["schema"] == {"type": "object"}
    response = to_response(completion('{"a": 1}', finish_reason="length"), body)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    events = list(response_events(response))
    assert events[-1]["type"] == "response.incomplete"


def test_structured_check() -> None:
    spec = structured_spec(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {
            "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
        }}}}
    )  # fmt: skip
    assert spec is not None and spec.constraint()["json"]["required"] == ["n"]
    assert answer_problem(completion('{"n": 3}'), spec) is None
    assert "schema" in str(answer_problem(completion('{"n": "3"}'), spec))
    assert "not JSON" in str(answer_problem(completion("three"), spec))
    assert "length" in str(answer_problem(completion('{"n": 3}', finish_reason="length"), spec))
    any_object = StructuredSpec("json_object", {"type": "object"})
    assert answer_problem(completion("[1, 2]"), any_object) is not None
    assert structured_spec({"response_format": {"type": "text"}}) is None


def test_a_retried_id_is_logged_as_attempts(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log.duckdb", tmp_path / "spill", flush_interval=0.05).start()
    try:
        for status in (429, 200):
            writer.submit(
                {"id": "job-7", "request_id": "job-7", "attempt": 1, "status_code": status}
            )
            writer.flush()
        writer.submit({"id": "job-7", "request_id": "job-7", "attempt": 1, "status_code": 200})
        writer.submit({"id": "job-7", "request_id": "job-7", "attempt": 1, "status_code": 201})
        writer.flush()
        rows = writer.read(
            lambda c: c.execute(
                "SELECT id, request_id, attempt, status_code FROM requests ORDER BY attempt"
            ).fetchall()
        )
    finally:
        writer.close()
    assert rows == [
        ("job-7", "job-7", 1, 429),
        ("job-7~2", "job-7", 2, 200),
        ("job-7~3", "job-7", 3, 200),
        ("job-7~4", "job-7", 4, 201),
    ]


def test_migration_3_upgrades_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:
        assert migrate(conn, MIGRATIONS[:2]) == 2
        conn.execute(
            "INSERT INTO requests (id, route, status_code) VALUES ('old-1', 'student', 200)"
        )
    with duckdb.connect(str(path)) as conn:
        assert migrate(conn) == MIGRATIONS[-1].version
        names = [r[0] for r in conn.execute("DESCRIBE requests").fetchall()]
        assert names == list(REQUEST_COLUMNS)
        row = conn.execute("SELECT id, endpoint, attempt FROM requests").fetchall()
    assert row == [("old-1", None, None)]


def test_fallback_rate_counts_only_the_cascades_requests() -> None:
    from datetime import UTC, datetime

    from proxy.logstore.queries import summary, timeseries

    now = datetime.now(UTC).replace(tzinfo=None)
    with duckdb.connect() as conn:
        migrate(conn)
        for i, (route, reason) in enumerate(
            [
                ("student", "confident"),
                ("teacher", "low_confidence"),
                ("none", "error"),  # failed inside the cascade: counts
                ("passthrough", "not_distilled"),
                ("passthrough", "not_distilled"),
                ("none", "refused"),
            ]
        ):
            conn.execute(
                "INSERT INTO requests (id, created_at, route, reason) VALUES (?, ?, ?, ?)",
                [f"r{i}", now, route, reason],
            )
        stats = summary(conn)
        series = timeseries(conn, bucket_seconds=3600)
    assert stats["requests"] == 6 and stats["fallback_rate"] == pytest.approx(1 / 3)
    assert stats["routes"]["passthrough"] == 2
    assert series[0]["fallback_rate"] == pytest.approx(1 / 3)


def test_passthrough_usage_corrects_the_token_estimate() -> None:
    from proxy.limits.policy import actual_tokens

    row = {"route": "passthrough", "status_code": 200, "teacher_prompt_tokens": 6}
    assert actual_tokens({**row, "teacher_completion_tokens": 0}) == 6
    assert actual_tokens({"route": "passthrough", "status_code": 200}) is None  # unknown
    assert actual_tokens({"route": "passthrough", "status_code": 429}) == 0


def test_token_estimate_counts_responses_and_embeddings_inputs() -> None:
    from proxy.limits.policy import estimate_tokens

    assert estimate_tokens({"input": "x" * 400, "max_output_tokens": 10}, 256) == 110
    items = [{"role": "user", "content": [{"type": "input_text", "text": "y" * 40}]}]
    assert estimate_tokens({"input": items, "instructions": "z" * 40}, 5) == 25
    assert estimate_tokens({"input": ["a" * 8, "b" * 8]}, 0) == 4
