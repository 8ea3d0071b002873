"""Fake OpenAI-compatible upstreams for fault paths and fast tests.

`FakeUpstream` is an httpx transport handler (plug it into `httpx.MockTransport`)
that answers from a queue of scripted behaviours and records every request body,
so tests can check exactly what reached the student or the teacher.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

Behaviour = Callable[[dict[str, Any]], "httpx.Response | asyncio.Future[Any] | Any"]


def completion(
    text: str,
    *,
    model: str = "fake",
    logprob: float = -0.05,
    n: int = 1,
    finish_reason: str = "stop",
    with_logprobs: bool = True,
    top_k: int = 0,
    prompt_tokens: int = 20,
) -> dict[str, Any]:
    tokens = text.split(" ") if text else []
    content = [
        {
            "token": (" " if i else "") + tok,
            "logprob": logprob,
            "bytes": None,
            "top_logprobs": [
                {"token": tok, "logprob": logprob},
                *[
                    {"token": f"alt{j}", "logprob": logprob - 3 - j}
                    for j in range(max(0, top_k - 1))
                ],
            ][: max(top_k, 0)],
        }
        for i, tok in enumerate(tokens)
    ]
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "logprobs": {"content": content} if with_logprobs else None,
            "finish_reason": finish_reason,
        }
        for i in range(n)
    ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens) * n,
            "total_tokens": prompt_tokens + len(tokens) * n,
        },
    }


def sse_chunks(payload: dict[str, Any], *, include_usage: bool = True) -> list[bytes]:
    events = []
    base = {
        "id": payload["id"],
        "created": payload["created"],
        "model": payload["model"],
        "object": "chat.completion.chunk",
    }
    for choice in payload["choices"]:
        idx = choice["index"]
        events.append(
            {
                **base,
                "choices": [{"index": idx, "delta": {"role": "assistant"}, "finish_reason": None}],
            }
        )
        for tok in (choice.get("logprobs") or {}).get("content") or [
            {"token": choice["message"]["content"]}
        ]:
            lp = {"content": [tok]} if "logprob" in tok else None
            events.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": idx,
                            "delta": {"content": tok["token"]},
                            "logprobs": lp,
                            "finish_reason": None,
                        }
                    ],
                }
            )
        events.append(
            {
                **base,
                "choices": [{"index": idx, "delta": {}, "finish_reason": choice["finish_reason"]}],
            }
        )
    if include_usage:
        events.append({**base, "choices": [], "usage": payload["usage"]})
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def json_response(status: int, payload: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=orjson.dumps(payload),
        headers={"content-type": "application/json", **headers},
    )


def error_response(status: int, message: str, **headers: str) -> httpx.Response:
    return json_response(
        status, {"error": {"message": message, "type": "x", "param": None, "code": None}}, **headers
    )


class _Stream(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes], delay: float, cut_after: int | None) -> None:
        self.parts, self.delay, self.cut_after = parts, delay, cut_after

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, part in enumerate(self.parts):
            if self.cut_after is not None and i >= self.cut_after:
                raise httpx.RemoteProtocolError("peer closed connection mid-stream")
            if self.delay:
                await asyncio.sleep(self.delay)
            yield part


@dataclass
class FakeUpstream:
    """Answers chat completions; `script` entries are consumed first, then `default`."""

    default_text: str = "Paris is the capital of France."
    logprob: float = -0.05
    script: list[Behaviour] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    models: list[str] = field(default_factory=lambda: ["fake-model"])
    stream_delay: float = 0.0
    cut_stream_after: int | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def answer(self, body: dict[str, Any]) -> httpx.Response:
        top_k = int(body.get("top_logprobs") or 0)
        payload = completion(
            self.default_text,
            model=str(body.get("model")),
            logprob=self.logprob,
            n=int(body.get("n") or 1),
            with_logprobs=bool(body.get("logprobs")),
            top_k=top_k,
        )
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            parts = sse_chunks(payload, include_usage=include)
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=_Stream(parts, self.stream_delay, self.cut_stream_after),
            )
        return json_response(200, payload)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return json_response(
                200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
            )
        try:
            body = orjson.loads(request.content)
        except orjson.JSONDecodeError:  # a relayed non-chat call (DELETE, upload, ...)
            return error_response(404, f"fake upstream: no {request.method} {request.url.path}")
        self.requests.append(body)
        self.headers_seen.append(dict(request.headers))
        if self.script:
            behaviour = self.script.pop(0)
            result = behaviour(body)
            if asyncio.iscoroutine(result):
                result = await result
            if isinstance(result, httpx.Response):
                return result
        return self.answer(body)


def hang(seconds: float) -> Behaviour:
    async def behaviour(body: dict[str, Any]) -> None:
        await asyncio.sleep(seconds)

    return behaviour


def fail_connect(body: dict[str, Any]) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
