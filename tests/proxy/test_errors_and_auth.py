"""Malformed input and keys: every proxy error uses OpenAI's envelope and status."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from proxy.server import BindRefused, check_bind
from proxy.settings import Settings
from tests.conftest import TEACHER_KEY

MESSAGES = [{"role": "user", "content": "hi"}]


def post(url: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"\xff\xfe{}", None),
        (b"[1, 2]", None),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', "messages.0.role"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 100000}', "n"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
            "max_tokens",
        ),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b"[" * 5000 + b"]" * 5000, None),
    ],
)
def test_malformed_bodies_are_400(make_proxy: Any, content: bytes, param: str | None) -> None:
    with make_proxy() as h:
        error = assert_envelope(post(h.url, content), 400)
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param
        assert h.student.requests == [] and h.teacher.requests == []


def test_huge_body_is_413(make_proxy: Any) -> None:
    with make_proxy(max_body_bytes=10_000) as h:
        big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 20_000 + b'"}]}'
        assert_envelope(post(h.url, big), 413)


def test_bad_route_header_is_400(make_proxy: Any) -> None:
    with make_proxy() as h:
        body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
        error = assert_envelope(post(h.url, body, **{"x-distill-route": "sideways"}), 400)
        assert error["param"] == "x-distill-route"


def test_keys_are_required_and_checked(make_proxy: Any) -> None:
    with make_proxy(api_keys="client-key-1,client-key-2", admin_key="admin-key") as h:
        with pytest.raises(openai.AuthenticationError):
            h.client(api_key="wrong").chat.completions.create(model="m", messages=MESSAGES)
        missing = httpx.post(
            f"{h.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
        )
        assert assert_envelope(missing, 401)["code"] == "missing_api_key"
        ok = h.client(api_key="client-key-2").chat.completions.create(model="m", messages=MESSAGES)
        assert ok.choices
        assert h.teacher.headers_seen == [] or all(
            s["authorization"] == f"Bearer {TEACHER_KEY}" for s in h.teacher.headers_seen
        )
        row = h.rows("status_code = 200")[0]
        assert row["client_key_hash"] and "client-key-2" not in str(row)
        refused = h.rows("status_code = 401")
        assert [r["error_code"] for r in refused] == ["invalid_api_key", "missing_api_key"]
        assert all(r["route"] == "none" and r["client_key_hash"] is None for r in refused)
        assert "wrong" not in str(refused)


def test_teacher_only_sees_the_teacher_key(make_proxy: Any) -> None:
    from tests.fakes import FakeUpstream

    with make_proxy(student=FakeUpstream(logprob=-5.0), api_keys="client-key-1") as h:
        h.client(api_key="client-key-1").chat.completions.create(model="m", messages=MESSAGES)
        assert h.teacher.headers_seen[0]["authorization"] == f"Bearer {TEACHER_KEY}"


def test_unknown_path_is_openai_404(make_proxy: Any) -> None:
    with make_proxy() as h:
        assert_envelope(httpx.get(f"{h.url}/v1/nope"), 404)


def test_health_and_models(make_proxy: Any) -> None:
    with make_proxy() as h:
        assert httpx.get(f"{h.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{h.url}/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        ids = [m.id for m in h.client().models.list()]
        assert "distill-student" in ids and "fake-model" in ids


def test_refuses_public_bind_without_keys(tmp_path: Any) -> None:
    with pytest.raises(BindRefused):
        check_bind(Settings(host="0.0.0.0", db=tmp_path / "d.duckdb"))
    check_bind(Settings(host="0.0.0.0", api_keys="k", db=tmp_path / "d.duckdb"))
    check_bind(Settings(host="127.0.0.1", db=tmp_path / "d.duckdb"))
