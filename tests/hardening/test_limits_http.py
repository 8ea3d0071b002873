"""Per-key limits through the real app with the official openai SDK: OpenAI-format 429s."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.settings import Settings
from tests.fakes import FakeUpstream

MESSAGES: Any = [{"role": "user", "content": "What is the capital of France?"}]


def ask(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="m", messages=MESSAGES, **kwargs)


def rate_limited(client: openai.OpenAI, **kwargs: Any) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as info:
        ask(client, **kwargs)
    return info.value


def test_requests_per_minute_per_key(make_proxy: Any) -> None:
    with make_proxy(api_keys="key-alpha-123,key-beta-456", limit_rpm=2) as h:
        alpha, beta = h.client("key-alpha-123"), h.client("key-beta-456")
        ask(alpha)
        ask(alpha)
        error = rate_limited(alpha)
        body = error.body
        assert isinstance(body, dict)
        assert body["type"] == "rate_limit_error" and body["code"] == "rate_limit_exceeded"
        assert set(body) == {"message", "type", "param", "code"}
        retry_after = int(error.response.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert error.response.headers["x-request-id"]
        ask(beta)  # the other key has its own window
        served = len(h.student.requests)
        assert served == 3  # the rejected request reached no upstream
        rows = h.rows()
        assert len(rows) == 4  # the refusal has its row too
        refused = [r for r in rows if r["status_code"] == 429]
        assert [(r["route"], r["error_code"]) for r in refused] == [("none", "rate_limit_exceeded")]
        assert refused[0]["client_key_hash"] == hashlib.sha256(b"key-alpha-123").hexdigest()


def test_override_by_digest_beats_the_default(make_proxy: Any) -> None:
    vip = "key-vip-0000001"
    digest = hashlib.sha256(vip.encode()).hexdigest()
    with make_proxy(
        api_keys=f"{vip},key-std-0000002", limit_rpm=1, key_limits={digest: {"rpm": 3}}
    ) as h:
        for _ in range(3):
            ask(h.client(vip))
        rate_limited(h.client(vip))
        ask(h.client("key-std-0000002"))
        rate_limited(h.client("key-std-0000002"))


def test_tokens_per_minute_rejects_a_request_that_cannot_fit(make_proxy: Any) -> None:
    with make_proxy(api_keys="key-alpha-123", limit_tpm=100) as h:
        error = rate_limited(h.client("key-alpha-123"), max_tokens=500)
        assert "Request too large" in str(error)
        ask(h.client("key-alpha-123"), max_tokens=50)  # ~8 + 50 fits


def test_spend_budget_uses_the_rows_cost(make_proxy: Any) -> None:
    student = FakeUpstream(logprob=-3.0)  # unsure: the (paid) teacher answers
    with make_proxy(student=student, api_keys="key-alpha-123", limit_usd_per_day=1e-6) as h:
        ask(h.client("key-alpha-123"))
        cost = h.rows(at_least=1)[0]["cost_usd"]
        assert cost is not None and cost > 1e-6
        error = rate_limited(h.client("key-alpha-123"))
        assert isinstance(error.body, dict) and error.body["code"] == "insufficient_quota"
        assert "Daily budget" in error.body["message"]
        assert 1 <= int(error.response.headers["retry-after"]) <= 86400


def test_spend_survives_a_restart(make_proxy: Any) -> None:
    student = FakeUpstream(logprob=-3.0)
    with make_proxy(student=student, api_keys="key-alpha-123", limit_usd_per_month=1e-6) as h:
        ask(h.client("key-alpha-123"))
        h.flush()
    with make_proxy(student=student, api_keys="key-alpha-123", limit_usd_per_month=1e-6) as h:
        error = rate_limited(h.client("key-alpha-123"))
        assert isinstance(error.body, dict) and error.body["code"] == "insufficient_quota"


@pytest.mark.parametrize(("mode", "limited"), [("ip", True), ("off", False)])
def test_without_keys_limits_apply_per_ip_or_not_at_all(
    make_proxy: Any, mode: str, limited: bool
) -> None:
    with make_proxy(limit_rpm=1, limit_without_keys=mode) as h:
        ask(h.client())
        if limited:
            rate_limited(h.client())
        else:
            ask(h.client())


def test_key_limits_from_env_json_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = "ab" * 32
    monkeypatch.setenv("DISTILL_KEY_LIMITS", f'{{"{digest}": {{"rpm": 5, "usd_per_day": 2.5}}}}')
    from_env = Settings()
    assert from_env.key_limits[digest].rpm == 5
    assert from_env.key_limits[digest].usd_per_day == 2.5
    monkeypatch.delenv("DISTILL_KEY_LIMITS")
    toml = tmp_path / "distill.toml"
    toml.write_text(f"limit_rpm = 60\n[key_limits.{digest}]\ntpm = 9000\n")
    monkeypatch.setenv("DISTILL_CONFIG", str(toml))
    from_toml = Settings()
    assert from_toml.limit_rpm == 60 and from_toml.key_limits[digest].tpm == 9000
    with pytest.raises(ValueError, match="rpn"):
        Settings(key_limits={digest: {"rpn": 5}})
