"""Hostile and malformed requests: each gets a clear OpenAI-format 4xx (or a normal
answer), never a 5xx from the proxy's own code, a crash or a hang. Extends
tests/proxy/test_errors_and_auth.py (which covers the basic malformed bodies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

MSG = '"messages": [{"role": "user", "content": "hi"}]'


def post(url: str, content: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error  # type: ignore[no-any-return]


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def with_msg(extra: str) -> bytes:
    """A valid request plus `extra` (``, "field": value``) before the closing brace."""
    return ('{"model": "m", ' + MSG + extra + "}").encode()


def user_content(raw: bytes) -> bytes:
    return b'{"model": "m", "messages": [{"role": "user", "content": ' + raw + b"}]}"


BAD_BODIES = {
    "invalid utf-8 inside a string": user_content(b'"\xff\xfe"'),
    "lone surrogate escape": user_content(b'"\\ud800"'),
    "empty body": b"",
    "whitespace body": b"   \n ",
    "NaN literal": with_msg(', "temperature": NaN'),
    "trailing garbage": with_msg("") + b" trailing",
    "messages not a list": b'{"model": "m", "messages": "hi"}',
    "message not an object": b'{"model": "m", "messages": ["hi"]}',
    "null role": b'{"model": "m", "messages": [{"role": null, "content": "x"}]}',
    "content is a number": user_content(b"5"),
    "content parts not objects": user_content(b"[1]"),
    "absurd max_tokens": with_msg(', "max_tokens": 1000000000000000000000000'),
    "n zero": with_msg(', "n": 0'),
    "temperature a string": with_msg(', "temperature": "hot"'),
    "temperature overflow": with_msg(', "temperature": 1e400'),
    "top_logprobs too high": with_msg(', "logprobs": true, "top_logprobs": 21'),
    "empty model": b'{"model": "", ' + MSG.encode() + b"}",
    "stream_options not an object": with_msg(', "stream": true, "stream_options": 3'),
    "deeply nested objects": with_msg(', "metadata": ' + nested(5000)),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_malformed_body_is_a_clear_400(make_proxy: Any, name: str) -> None:
    with make_proxy() as h:
        error = assert_openai_error(post(h.url, BAD_BODIES[name]), 400)
        assert error["type"] == "invalid_request_error"
        assert h.student.requests == [] and h.teacher.requests == []
        rows = h.rows()  # refused, and still logged (issue 13)
        assert [(r["route"], r["status_code"]) for r in rows] == [("none", 400)]


# Valid JSON the proxy must pass on or refuse cleanly, never turn into a 500.
ODD_BUT_VALID = {
    "nested unknown field 300 deep": with_msg(', "x_extra": ' + nested(300)),
    "huge integer seed": with_msg(', "seed": 100000000000000000000000'),
    "huge integer in an unknown field": with_msg(', "x": -100000000000000000000000'),
    "NUL and control characters": user_content(b'"a\\u0000b\\u0007c"'),
    "float overflow in an unknown field": with_msg(', "x": 1e999'),
    "unicode everywhere": '{"model": "\u00fc\u6f22", "messages": [{"role": "user", '
    '"content": "\U0001f600 \u202e"}]}'.encode(),
    "duplicate keys": b'{"model": "m", "model": "n", ' + MSG.encode() + b"}",
}


@pytest.mark.parametrize("name", list(ODD_BUT_VALID))
def test_odd_but_valid_json_is_answered_or_refused_cleanly(make_proxy: Any, name: str) -> None:
    with make_proxy() as h:
        response = post(h.url, ODD_BUT_VALID[name])
        if response.status_code == 200:
            assert response.json()["choices"][0]["message"]["content"]
            assert len(h.rows()) == 1  # and it was logged
        else:
            assert_openai_error(response, 400)


def test_chunked_body_without_length_is_cut_at_the_limit(make_proxy: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}]}'

    with make_proxy(max_body_bytes=50_000) as h:
        response = post(h.url, chunks())
        assert assert_openai_error(response, 413)["code"] == "request_too_large"


def test_many_messages_and_long_headers_are_handled(make_proxy: Any) -> None:
    messages = [{"role": "user", "content": "x"}] * 20_000
    with make_proxy() as h:
        response = post(
            h.url,
            json.dumps({"model": "m", "messages": messages}).encode(),
            **{"x-request-id": "r" * 5000, "x-distill-tag": "t" * 5000},
        )
        # A request id longer than 200 characters is refused, never silently replaced.
        assert assert_openai_error(response, 400)["code"] == "invalid_request_id"
        assert response.headers["x-request-id"].startswith("req_")  # not the 5 KB one
        response = post(
            h.url,
            json.dumps({"model": "m", "messages": messages}).encode(),
            **{"x-request-id": "r" * 200, "x-distill-tag": "t" * 5000},
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "r" * 200
        row = h.rows("status_code = 200")[0]
        assert len(row["tag"]) <= 128 and row["id"] == "r" * 200
        refused = h.rows("status_code = 400")[0]
        assert refused["route"] == "none" and refused["error_code"] == "invalid_request_id"


@pytest.mark.parametrize("route", ["student", "teacher"])
def test_wrong_http_methods_and_paths_are_openai_errors(make_proxy: Any, route: str) -> None:
    with make_proxy() as h:
        assert_openai_error(httpx.get(f"{h.url}/v1/chat/completions"), 405)
        assert_openai_error(httpx.post(f"{h.url}/v1/chat/completions/../../etc/passwd"), 404)
        assert_openai_error(httpx.delete(f"{h.url}/v1/models"), 405)
