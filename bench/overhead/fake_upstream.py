"""A fake OpenAI-compatible chat upstream that is as fast as Python gets.

Raw asyncio protocol + the httptools parser (uvloop when available), HTTP/1.1
keep-alive, a fixed answer with confident logprobs (so a proxy's student path
serves it), non-streaming and SSE streaming, `stream_options.include_usage`.
Response bodies are rendered once per request shape and cached.

    python -m bench.overhead.fake_upstream --port 8201
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, cast

import httptools
import orjson

MODEL = "fake-model"
ANSWER_TOKENS = ("Hello", "!", " This", " is", " a", " fast", " fake", " answer", ".")
PROMPT_TOKENS = 12
CACHE_LIMIT = 64
JSON = b"application/json"
SSE = b"text/event-stream"

ResponseKey = tuple[bool, int | None, bool, int]


def _logprobs(top_k: int) -> dict[str, Any]:
    content = []
    for i, tok in enumerate(ANSWER_TOKENS):
        lp = -0.01 - 0.001 * i
        alts = [
            {"token": f"{tok}~{j}", "logprob": lp - 5.0 - j, "bytes": None} for j in range(1, top_k)
        ]
        top = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}, *alts][:top_k]
        content.append(
            {"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": top}
        )
    return {"content": content, "refusal": None}


def _usage(n: int) -> dict[str, int]:
    done = len(ANSWER_TOKENS) * n
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": done,
        "total_tokens": PROMPT_TOKENS + done,
    }


def render_full(top_k: int | None, n: int) -> bytes:
    lp = _logprobs(top_k) if top_k is not None else None
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": "".join(ANSWER_TOKENS)},
            "logprobs": lp,
            "finish_reason": "stop",
        }
        for i in range(n)
    ]
    return orjson.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": choices,
            "usage": _usage(n),
        }
    )


def render_stream(top_k: int | None, include_usage: bool, n: int) -> bytes:
    lp = _logprobs(top_k)["content"] if top_k is not None else None
    frames: list[Any] = []
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    for i in range(n):
        frames.append(
            {
                **base,
                "choices": [
                    {
                        "index": i,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        )
        for j, tok in enumerate(ANSWER_TOKENS):
            piece = {"content": [lp[j]], "refusal": None} if lp is not None else None
            frames.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": i,
                            "delta": {"content": tok},
                            "logprobs": piece,
                            "finish_reason": None,
                        }
                    ],
                }
            )
        frames.append(
            {
                **base,
                "choices": [{"index": i, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            }
        )
    if include_usage:
        frames.append({**base, "choices": [], "usage": _usage(n)})
    body = b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames)
    return body + b"data: [DONE]\n\n"


def response_bytes(body: bytes, cache: dict[ResponseKey, bytes]) -> tuple[bytes, bytes]:
    """(content type, body) for a chat request body; 400-style JSON for garbage."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        return JSON, b'{"error":{"message":"bad json","type":"invalid_request_error"}}'
    if not isinstance(req, dict):
        return JSON, b'{"error":{"message":"bad body","type":"invalid_request_error"}}'
    top_k = int(req.get("top_logprobs") or 0) if req.get("logprobs") else None
    options = req.get("stream_options") or {}
    key = (
        bool(req.get("stream")),
        top_k,
        bool(options.get("include_usage")),
        int(req.get("n") or 1),
    )
    rendered = cache.get(key)
    if rendered is None:
        stream, k, usage, n = key
        rendered = render_stream(k, usage, n) if stream else render_full(k, n)
        if len(cache) < CACHE_LIMIT:
            cache[key] = rendered
    return (SSE if key[0] else JSON), rendered


MODELS = orjson.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}]}
)


class FakeHTTP(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order as they complete."""

    def __init__(self, cache: dict[ResponseKey, bytes]) -> None:
        self.cache = cache
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but behave like one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"POST" and self.url.startswith(b"/v1/chat/completions"):
            ctype, payload = response_bytes(b"".join(self.body), self.cache)
        elif self.url.startswith(b"/v1/models"):
            ctype, payload = JSON, MODELS
        else:
            ctype, payload = JSON, b'{"status":"ok"}'
        keep = self.parser.should_keep_alive()
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: "
            + ctype
            + b"\r\ncontent-length: "
            + str(len(payload)).encode()
            + b"\r\n"
            + (b"" if keep else b"connection: close\r\n")
            + b"\r\n"
        )
        assert self.transport is not None
        self.transport.write(head + payload)
        if not keep:
            self.transport.close()


async def serve(host: str, port: int) -> None:
    cache: dict[ResponseKey, bytes] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeHTTP(cache), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fast fake OpenAI chat upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8201)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:  # plain asyncio is fine, just slower
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
