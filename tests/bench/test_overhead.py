"""The overhead benchmark's fake upstream and its arithmetic."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from bench.common.procs import free_port
from bench.overhead.fake_upstream import ANSWER_TOKENS, FakeHTTP, ResponseKey, response_bytes
from bench.overhead.summary import compare, medians, table


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """The fake upstream's protocol on a real loopback socket, in a background loop."""
    loop = asyncio.new_event_loop()
    port = free_port()
    cache: dict[ResponseKey, bytes] = {}
    server = loop.run_until_complete(loop.create_server(lambda: FakeHTTP(cache), "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/v1"
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.run_until_complete(server.wait_closed())
    loop.close()


def test_response_shapes() -> None:
    cache: dict[ResponseKey, bytes] = {}
    ctype, full = response_bytes(b'{"messages":[],"logprobs":true,"top_logprobs":3}', cache)
    assert ctype == b"application/json"
    choice = orjson.loads(full)["choices"][0]
    assert choice["message"]["content"] == "".join(ANSWER_TOKENS)
    assert all(len(t["top_logprobs"]) == 3 for t in choice["logprobs"]["content"])
    assert max(t["logprob"] for t in choice["logprobs"]["content"]) < 0
    ctype, stream = response_bytes(
        b'{"stream":true,"stream_options":{"include_usage":true}}', cache
    )
    assert ctype == b"text/event-stream"
    assert stream.endswith(b"data: [DONE]\n\n")
    assert b'"usage":{"prompt_tokens"' in stream
    assert len(cache) == 2
    _, bad = response_bytes(b"{nope", cache)
    assert b"error" in bad


def test_sdk_and_keep_alive_over_loopback(upstream: str) -> None:
    client = openai.OpenAI(base_url=upstream, api_key="k", max_retries=0)
    try:
        done = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hi"}],
            logprobs=True,
            top_logprobs=5,
        )
        assert done.choices[0].message.content == "".join(ANSWER_TOKENS)
        assert done.usage is not None and done.usage.completion_tokens == len(ANSWER_TOKENS)
        chunks = list(
            client.chat.completions.create(
                model="fake-model",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "".join(ANSWER_TOKENS)
        assert chunks[-1].usage is not None
    finally:
        client.close()
    url = httpx.URL(upstream)
    conn = http.client.HTTPConnection(url.host, url.port, timeout=5)
    try:
        conn.request("GET", "/v1/models")
        first = conn.getresponse()
        assert orjson.loads(first.read())["data"][0]["id"] == "fake-model"
        sock = conn.sock
        conn.request("POST", "/v1/chat/completions", body=b'{"messages": []}')
        second = conn.getresponse()
        assert second.status == 200 and orjson.loads(second.read())["choices"]
        assert conn.sock is sock  # both requests on one keep-alive connection
    finally:
        conn.close()


def _run(mode: str, conc: int, target: str, rps: float, p50: float, p99: float) -> dict:
    return {
        "mode": mode,
        "concurrency": conc,
        "target": target,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": 0,
    }


def test_compare_and_goal() -> None:
    runs = [
        _run("stream", 16, "direct", 10000, 1.0, 2.0),
        _run("stream", 16, "direct", 12000, 1.2, 2.4),
        _run("stream", 16, "distill", 1000, 2.0, 4.0),
        _run("stream", 16, "distill", 1000, 2.0, 4.0),
        _run("stream", 16, "litellm", 70, 30.0, 60.0),
        _run("stream", 16, "litellm", 70, 30.0, 60.0),
    ]
    cells = medians(runs)
    assert cells[("stream", 16, "direct")]["rps"] == 11000
    row = compare(cells)[0]
    assert row["distill_vs_direct_rps"] == pytest.approx(1000 / 11000)
    assert row["distill_vs_litellm_rps"] == pytest.approx(1000 / 70)
    assert row["distill_added_p50_ms"] == pytest.approx(0.9)
    assert row["added_p50_ours_over_litellm"] == pytest.approx(0.9 / 28.9)
    assert row["goal_met"] is True
    slow = compare(medians(runs[:2] + [_run("stream", 16, "distill", 500, 9.0, 20.0)] + runs[4:]))
    assert slow[0]["goal_met"] is False
    text = table(cells, [row])
    assert "litellm" in text and "met" in text


def test_compare_without_litellm() -> None:
    runs = [
        _run("nonstream", 1, "direct", 5000, 0.2, 0.4),
        _run("nonstream", 1, "distill", 800, 1.0, 2.0),
    ]
    row = compare(medians(runs))[0]
    assert "distill_vs_litellm_rps" not in row and "goal_met" not in row
    assert row["distill_vs_direct_rps"] == pytest.approx(0.16)
