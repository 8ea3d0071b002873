"""The official `openai` SDK against the real app: every endpoint an app calls, each
call's log row, and the refusals (issue 13)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.dropin.conftest import TEACHER_KEY
from tests.dropin.fake_teacher import DIMENSIONS, SPEECH

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


class City(BaseModel):
    name: str
    country: str


CITY_JSON = '{"name": "Paris", "country": "France"}'


def only_row(h: Any, endpoint: str) -> dict[str, Any]:
    rows = h.rows(f"endpoint = '{endpoint}'", at_least=1)
    assert len(rows) == 1, rows
    return rows[0]


def teacher_auth(h: Any) -> set[str]:
    return {s.get("authorization", "") for s in h.teacher.headers_seen}


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_are_relayed_and_logged(dropin: Any, encoding: str) -> None:
    with dropin() as h:
        client = h.client()
        kwargs: dict[str, Any] = {"encoding_format": "float"} if encoding == "float" else {}
        raw = client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=["a", "b"], **kwargs
        )
        result = raw.parse()
        assert [len(d.embedding) for d in result.data] == [DIMENSIONS, DIMENSIONS]
        assert result.data[1].embedding[0] == pytest.approx(0.25)
        assert raw.headers["x-upstream-request-id"] == "teacher-req-1"
        assert h.teacher.raw[-1].headers["x-client-request-id"] == raw.headers["x-request-id"]
        sent = json.loads(h.teacher.bodies["/embeddings"])
        assert sent["input"] == ["a", "b"] and sent["encoding_format"] == encoding
        assert teacher_auth(h) == {f"Bearer {TEACHER_KEY}"}
        row = only_row(h, "/v1/embeddings")
        assert row["id"] == raw.headers["x-request-id"]
        assert (row["route"], row["reason"], row["status_code"]) == (
            "passthrough",
            "not_distilled",
            200,
        )
        assert row["teacher_prompt_tokens"] == 6 and row["cost_usd"] > 0
        assert row["requested_model"] == row["teacher_model"] == "text-embedding-3-small"
        assert row["teacher_text"] is None  # never training data


def test_legacy_completions_plain_and_streamed(dropin: Any) -> None:
    with dropin() as h:
        client = h.client()
        plain = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hello")
        assert plain.choices[0].text == " world again"
        chunks = list(
            client.completions.create(
                model="gpt-3.5-turbo-instruct",
                prompt="Hello",
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(c.choices[0].text for c in chunks if c.choices) == " world again"
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
        rows = h.rows("endpoint = '/v1/completions'")
        assert [(r["stream"], r["status_code"], r["route"]) for r in rows] == [
            (False, 200, "passthrough"),
            (True, 200, "passthrough"),
        ]
        assert all(r["teacher_completion_tokens"] == 3 for r in rows)
        assert rows[1]["ttfb_ms"] is not None


def test_moderations(dropin: Any) -> None:
    with dropin() as h:
        result = h.client().moderations.create(model="omni-moderation-latest", input="hi")
        assert result.results[0].flagged is False
        assert only_row(h, "/v1/moderations")["status_code"] == 200


def test_multipart_upload_and_binary_download_are_byte_for_byte(dropin: Any) -> None:
    data = b'{"messages": []}\n' * 1000 + bytes(range(256))
    with dropin() as h:
        client = h.client()
        uploaded = client.files.create(file=("train.jsonl", data), purpose="fine-tune")
        assert uploaded.id == "file-abc123"
        sent = h.teacher.raw[-1]
        assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
        assert data in h.teacher.bodies["/files"]
        assert uploaded.bytes == len(h.teacher.bodies["/files"])
        speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello")
        assert speech.content == SPEECH
        upload_row = only_row(h, "/v1/files")
        assert upload_row["route"] == "passthrough"
        assert json.loads(upload_row["request_json"]) == {  # the form, never the file
            "multipart": {"purpose": "fine-tune"},
            "files": [
                {
                    "field": "file",
                    "filename": "train.jsonl",
                    "content_type": "application/octet-stream",
                    "bytes": len(data),
                }
            ],
        }
        client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", SPEECH))
        assert only_row(h, "/v1/audio/transcriptions")["requested_model"] == "whisper-1"
        assert only_row(h, "/v1/audio/speech")["status_code"] == 200


def test_responses_served_by_the_student(dropin: Any) -> None:
    with dropin(student_text="Paris is the capital.") as h:
        client = h.client()
        raw = client.responses.with_raw_response.create(
            model="gpt-4o-mini", input="What is the capital of France?", instructions="Be brief."
        )
        response = raw.parse()
        assert response.output_text == "Paris is the capital."
        assert raw.headers["x-distill-route"] == "student"
        events = list(
            client.responses.create(model="gpt-4o-mini", input="Capital of France?", stream=True)
        )
        kinds = [e.type for e in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert deltas == "Paris is the capital."
        assert events[-1].response.usage is not None
        rows = h.rows("endpoint = '/v1/responses'")
        assert [(r["route"], r["reason"], r["stream"]) for r in rows] == [
            ("student", "confident", False),
            ("student", "confident", True),
        ]
        logged = json.loads(rows[0]["request_json"])
        assert logged["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
        assert rows[0]["student_text"] == "Paris is the capital." and rows[0]["prompt_hash"]


def test_responses_fall_back_to_the_teachers_responses(dropin: Any) -> None:
    with dropin(student_logprob=-3.0) as h:
        client = h.client()
        response = client.responses.create(model="gpt-4o-mini", input="Hard question")
        assert response.output_text == "The teacher answers via Responses."
        streamed = list(client.responses.create(model="gpt-4o-mini", input="Hard", stream=True))
        assert streamed[-1].type == "response.completed"
        tools = client.responses.create(
            model="gpt-4o-mini", input="Search", tools=[{"type": "web_search"}]
        )
        assert tools.output_text
        rows = h.rows("endpoint = '/v1/responses'")
        assert [(r["route"], r["reason"]) for r in rows] == [
            ("teacher", "low_confidence"),
            ("teacher", "low_confidence"),
            ("teacher", "unsupported:tools"),
        ]
        for row in rows:  # teacher rows are training data like chat rows
            assert row["teacher_text"] == "The teacher answers via Responses."
            assert row["teacher_finish_reason"] == "stop"
            assert row["teacher_prompt_tokens"] == 11 and row["teacher_completion_tokens"] == 7
        assert rows[0]["student_text"] == "Paris"  # the student's answer beside it


def test_chat_parse_on_the_student_route(dropin: Any) -> None:
    with dropin(student_text=CITY_JSON) as h:
        raw = h.client().chat.completions.with_raw_response.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=City
        )
        assert raw.parse().choices[0].message.parsed == City(name="Paris", country="France")
        assert raw.headers["x-distill-route"] == "student"
        sent = h.student.requests[-1]
        assert "response_format" not in sent
        assert sent["structured_outputs"]["json"]["properties"]["name"] == {
            "title": "Name",
            "type": "string",
        }


def test_chat_parse_invalid_student_json_goes_to_the_teacher(dropin: Any) -> None:
    with dropin(student_text="Paris, France", teacher_text=CITY_JSON) as h:
        raw = h.client().chat.completions.with_raw_response.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=City
        )
        assert raw.parse().choices[0].message.parsed == City(name="Paris", country="France")
        assert raw.headers["x-distill-route"] == "teacher"
        assert raw.headers["x-distill-reason"] == "invalid_structured_output"
        json_mode = h.client().chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, response_format={"type": "json_object"}
        )
        assert json.loads(json_mode.choices[0].message.content or "") == json.loads(CITY_JSON)
        assert h.student.requests[-1]["structured_outputs"] == {"json": {"type": "object"}}
        rows = h.rows("endpoint = '/v1/chat/completions'")
        assert [r["reason"] for r in rows] == ["invalid_structured_output"] * 2
        assert all(r["error"] is None for r in rows)  # a good training row, not an error


def test_student_json_that_breaks_the_schema_is_never_served(dropin: Any) -> None:
    """JSON, but not the schema's (a required field missing): the teacher answers, plain
    and streamed, however confident the student; the student's answer stays in the log."""
    with dropin(student_text='{"name": "Paris"}', teacher_text=CITY_JSON) as h:
        client = h.client()
        raw = client.chat.completions.with_raw_response.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=City
        )
        assert raw.parse().choices[0].message.parsed == City(name="Paris", country="France")
        assert (raw.headers["x-distill-route"], raw.headers["x-distill-reason"]) == (
            "teacher",
            "invalid_structured_output",
        )
        schema = City.model_json_schema()  # name and country required
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert json.loads(text) == json.loads(CITY_JSON)
        rows = h.rows("endpoint = '/v1/chat/completions'")
        assert [(r["route"], r["reason"]) for r in rows] == [
            ("teacher", "invalid_structured_output")
        ] * 2
        assert {r["student_text"] for r in rows} == {'{"name": "Paris"}'}


def test_responses_parse_on_both_routes(dropin: Any) -> None:
    with dropin(student_text=CITY_JSON) as h:
        parsed = h.client().responses.parse(
            model="gpt-4o-mini", input="Capital of France?", text_format=City
        )
        assert parsed.output_parsed == City(name="Paris", country="France")
        assert h.student.requests[-1]["structured_outputs"]["json"]["type"] == "object"
    with dropin(student_text="not json") as h:
        h.teacher.responses_text = CITY_JSON
        parsed = h.client().responses.parse(
            model="gpt-4o-mini", input="Capital of France?", text_format=City
        )
        assert parsed.output_parsed == City(name="Paris", country="France")
        # Same database as the first proxy: its row first, then this one.
        rows = h.rows("endpoint = '/v1/responses'")
        assert [r["reason"] for r in rows] == ["confident", "invalid_structured_output"]


def test_models_answer_for_the_names_clients_ask_for(dropin: Any) -> None:
    with dropin(model_aliases="gpt-4o-mini,text-embedding-3-small") as h:
        client = h.client()
        ids = [m.id for m in client.models.list()]
        assert {"gpt-4o-mini", "text-embedding-3-small", "fake-model"} <= set(ids)
        assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve("no-such-model")
        assert info.value.code == "model_not_found"


def test_refused_requests_have_rows_and_request_ids(dropin: Any) -> None:
    key = "client-key-0001"
    with dropin(api_keys=key, passthrough="all,-images") as h:
        url = f"{h.url}/v1"
        auth = {"authorization": f"Bearer {key}"}
        unknown = httpx.post(f"{url}/no-such-endpoint", json={}, headers=auth)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"
        assert unknown.headers["x-request-id"].startswith("req_")
        with pytest.raises(openai.PermissionDeniedError) as denied:
            h.client(key).images.generate(model="dall-e-3", prompt="a cat")
        assert denied.value.code == "endpoint_disabled"
        with pytest.raises(openai.AuthenticationError) as unauthorized:
            h.client("wrong-key").embeddings.create(model="e", input="x")
        assert unauthorized.value.response.headers["x-request-id"]
        odd = httpx.post(
            f"{url}/embeddings", json={}, headers={**auth, "x-request-id": "café".encode()}
        )
        assert odd.status_code == 400 and odd.json()["error"]["code"] == "invalid_request_id"
        rows = {r["endpoint"]: r for r in h.rows("route = 'none'")}
        assert rows["/v1/no-such-endpoint"]["status_code"] == 404
        assert rows["/v1/images/generations"]["error_code"] == "endpoint_disabled"
        assert rows["/v1/images/generations"]["client_key_hash"] == (
            hashlib.sha256(key.encode()).hexdigest()
        )
        assert rows["/v1/embeddings"]["status_code"] in (400, 401)
        assert len(h.rows("route = 'none'")) == 4
        assert key not in str(h.rows()) and "wrong-key" not in str(h.rows())
        assert h.teacher.raw == []  # nothing refused reached the teacher


def test_client_ids_are_kept_and_retries_are_attempts(dropin: Any) -> None:
    with dropin() as h:
        client = h.client()
        odd_id = "order(42), try #1; ok"
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=MESSAGES, extra_headers={"x-request-id": odd_id}
            )
            assert raw.headers["x-request-id"] == odd_id
            h.flush()
        rows = h.rows(f"request_id = '{odd_id}'")
        assert sorted((r["id"], r["attempt"]) for r in rows) == [
            (odd_id, 1),
            (f"{odd_id}~2", 2),
            (f"{odd_id}~3", 3),
        ]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="m", messages=MESSAGES, extra_headers={"x-request-id": "x" * 201}
            )


def test_teacher_errors_reach_the_client_as_sdk_exceptions(dropin: Any) -> None:
    with dropin() as h:
        client = h.client()
        with pytest.raises(openai.NotFoundError) as info:
            client.batches.retrieve("batch_missing")
        assert info.value.code == "nope"  # the teacher's own envelope
        assert info.value.response.headers["x-distill-route"] == "passthrough"
        row = only_row(h, "/v1/batches/batch_missing")
        assert (row["route"], row["status_code"], row["error_code"]) == ("passthrough", 404, "nope")
        assert row["error"].startswith("teacher: no /batches/batch_missing")


def test_unreachable_teacher_is_a_502_row(dropin: Any) -> None:
    with dropin() as h:
        h.teacher.unreachable = True
        with pytest.raises(openai.APIStatusError) as info:
            h.client().embeddings.create(model="e", input="x")
        assert info.value.status_code == 502
        row = only_row(h, "/v1/embeddings")
        assert (row["route"], row["status_code"]) == ("passthrough", 502)
        assert row["error_code"] == "upstream_unavailable"


def test_responses_teacher_is_retried_then_degrades_to_the_student(dropin: Any) -> None:
    with dropin(student_logprob=-3.0, teacher_retries=1) as h:
        h.teacher.responses_failures = [503]
        retried = h.client().responses.create(model="gpt-4o-mini", input="Hard question")
        assert retried.output_text == "The teacher answers via Responses."
        h.teacher.responses_failures = [500, 500]
        raw = h.client().responses.with_raw_response.create(model="gpt-4o-mini", input="Hard")
        assert raw.parse().output_text == "Paris"  # the student's answer, marked
        assert raw.headers["x-distill-degraded"] == "teacher-unavailable"
        rows = h.rows("endpoint = '/v1/responses'")
        assert [(r["route"], r["teacher_retries"], r["degraded"]) for r in rows] == [
            ("teacher", 1, None),
            ("student", 0, "teacher-unavailable"),
        ]


def test_responses_rows_are_training_data_passthrough_and_refused_are_not(
    dropin: Any, tmp_path: Any
) -> None:
    from proxy.logstore.snapshot import export_snapshot
    from trainer.config import TrainConfig
    from trainer.dataset import select_dataset

    with dropin(student_logprob=-3.0) as h:
        client = h.client()
        for i in range(4):
            client.responses.create(model="gpt-4o-mini", input=f"Responses question {i}")
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"Chat {i}"}]
            )
        client.embeddings.create(model="e", input="not training data")
        httpx.post(f"{h.url}/v1/nope", json={})
        h.flush()
        snapshot = export_snapshot(h.app.state.writer, tmp_path / "snap.parquet")
    selection = select_dataset(
        snapshot, TrainConfig(min_rows=2, min_eval_rows=1, eval_fraction=0.5)
    )
    prompts = {row.messages[-1]["content"] for row in selection.train + selection.eval}
    assert prompts == {f"Responses question {i}" for i in range(4)} | {
        f"Chat {i}" for i in range(4)
    }


def test_passthrough_streams_as_the_teacher_sends(dropin: Any) -> None:
    import time

    with dropin() as h:
        h.teacher.stream_delay = 0.4  # between events: 4 events take >= 1.6 s
        started = time.monotonic()
        arrivals = []
        for _chunk in h.client().completions.create(model="i", prompt="Hello", stream=True):
            arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 3 and arrivals[-1] >= 1.2
        assert arrivals[0] < arrivals[-1] - 0.6  # the first event was not held back
        row = only_row(h, "/v1/completions")
        assert row["ttfb_ms"] < row["total_latency_ms"] - 600


def test_responses_stream_helper_accumulates_the_students_events(dropin: Any) -> None:
    with dropin(student_text=CITY_JSON) as h:
        client = h.client()
        with client.responses.stream(model="gpt-4o-mini", input="Capital of France?") as stream:
            texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert "".join(texts) == final.output_text == CITY_JSON
        with client.responses.stream(
            model="gpt-4o-mini", input="Capital of France?", text_format=City
        ) as stream:
            parsed = stream.get_final_response().output_parsed
        assert parsed == City(name="Paris", country="France")
        assert [r["stream"] for r in h.rows("endpoint = '/v1/responses'")] == [True, True]
