"""A small OpenAI-compatible chat server for process-level tests and the soak bench.

Run one per upstream (student and teacher) on loopback:

    python -m tests.hardening.fake_openai_server --port 8101 --name student
    python -m tests.hardening.fake_openai_server --port 8102 --name teacher --api-key sk-t

Behaviour is steered per request by directives in the last user message, addressed
to a server by name: ``#student=unsure #teacher=500`` makes the student unconfident
and the teacher fail. Directives:

    sure | unsure      token logprob -0.01 | -3.0 (the student's confidence)
    slow:MS            wait MS milliseconds before answering
    hang               never answer (until the client gives up)
    429 | 500 | 400    answer with that status (429 carries Retry-After: 1)
    echo-auth          401 whose message echoes the Authorization header and the prompt
    cut                stream: drop the connection after two chunks
    echo-auth-stream   stream: two chunks, then an error event echoing the Authorization header
    stall:MS           stream: two chunks, then silence for MS milliseconds
    drip:MS            stream: MS milliseconds between content chunks
    words:N            answer with N words

Plain OpenAI protocol otherwise: stream and non-stream, ``n``, ``logprobs`` /
``top_logprobs``, ``stream_options.include_usage``, usage counts. ``GET /stats`` returns
request counts.

Like vLLM with runtime LoRA, ``POST /v1/load_lora_adapter`` / ``unload_lora_adapter``
register adapter names (listed by ``/v1/models``); an adapter whose
``adapter_config.json`` says ``"fake_quality": "good"`` (tests/loop/fake_trainer.py writes
it) answers like the teacher. With ``--base-words`` the base model answers those words
instead, so a trained adapter measurably beats it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = (
    "Paris", "is", "the", "capital", "and", "largest", "city", "of", "France", "and", "a",
    "global", "centre",
)  # fmt: skip
_DIRECTIVE = re.compile(r"#(\w+)=([\w:.-]+)")


@dataclass
class ServerState:
    name: str
    api_key: str | None
    latency_ms: float
    base_words: tuple[str, ...] = WORDS
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    adapters: dict[str, str] = field(default_factory=dict)  # name -> fake_quality

    def words_for(self, model: str) -> tuple[str, ...]:
        return WORDS if self.adapters.get(model) == "good" else self.base_words


def directives(body: dict[str, Any], name: str) -> dict[str, str]:
    """{behaviour: argument} addressed to this server in the last user message."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    users = [m for m in messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    text = content if isinstance(content, str) else str(content)
    found: dict[str, str] = {}
    for target, value in _DIRECTIVE.findall(text):
        if target == name:
            key, _, arg = value.partition(":")
            found[key] = arg
    return found


def _prompt_text(body: dict[str, Any]) -> str:
    return " ".join(
        str(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)
    )


def _logprobs(tokens: list[str], logprob: float, top_k: int) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": tok,
                "logprob": logprob,
                "bytes": None,
                "top_logprobs": [
                    {"token": tok, "logprob": logprob},
                    *({"token": f"alt{j}", "logprob": logprob - 3 - j} for j in range(top_k - 1)),
                ][:top_k],
            }
            for tok in tokens
        ]
    }


def completion(
    body: dict[str, Any], found: dict[str, str], vocabulary: tuple[str, ...] = WORDS
) -> dict[str, Any]:
    words = int(found.get("words") or 0) or 8
    tokens = [(" " if i else "") + vocabulary[i % len(vocabulary)] for i in range(words)]
    logprob = -3.0 if "unsure" in found else -0.01
    wants = bool(body.get("logprobs"))
    top_k = int(body.get("top_logprobs") or 0)
    n = int(body.get("n") or 1)
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": "".join(tokens)},
            "logprobs": _logprobs(tokens, logprob, top_k) if wants else None,
            "finish_reason": "stop",
        }
        for i in range(n)
    ]
    prompt_tokens = max(1, len(_prompt_text(body)) // 4)
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model")),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": words * n,
            "total_tokens": prompt_tokens + words * n,
        },
    }


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream_events(
    payload: dict[str, Any],
    include_usage: bool,
    found: dict[str, str],
    echo: str | None = None,
) -> AsyncIterator[bytes]:
    base = {k: payload[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    sent = 0
    for choice in payload["choices"]:
        lp = (choice.get("logprobs") or {}).get("content")
        pieces = lp or [{"token": choice["message"]["content"]}]
        yield _event(
            {
                **base,
                "choices": [
                    {
                        "index": choice["index"],
                        "delta": {"role": "assistant"},
                        "finish_reason": None,
                    }
                ],
            }
        )
        for piece in pieces:
            sent += 1
            if "cut" in found and sent > 2:
                raise ConnectionAbortedError("fake upstream cut the stream")
            if "stall" in found and sent == 3:
                await asyncio.sleep(float(found["stall"] or 3600_000) / 1000)
            if echo is not None and sent > 2:
                yield _event({"error": {"message": f"key {echo} revoked", "type": "fake_error"}})
                yield b"data: [DONE]\n\n"
                return
            await asyncio.sleep(float(found.get("drip") or 0) / 1000)
            yield _event(
                {
                    **base,
                    "choices": [
                        {
                            "index": choice["index"],
                            "delta": {"content": piece["token"]},
                            "logprobs": {"content": [piece]} if "logprob" in piece else None,
                            "finish_reason": None,
                        }
                    ],
                }
            )
        yield _event(
            {**base, "choices": [{"index": choice["index"], "delta": {}, "finish_reason": "stop"}]}
        )
    if include_usage:
        yield _event({**base, "choices": [], "usage": payload["usage"]})
    yield b"data: [DONE]\n\n"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "fake_error", "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _fault(request: Request, body: dict[str, Any], found: dict[str, str]) -> Response | None:
    if "hang" in found:
        await asyncio.sleep(3600)
    if "echo-auth" in found:
        echoed = f"{request.headers.get('authorization')} for {_prompt_text(body)[:200]}"
        return error(401, f"Incorrect API key provided: {echoed}")
    for status in ("429", "500", "400"):
        if status in found:
            headers = {"retry-after": "1"} if status == "429" else None
            return error(int(status), f"fake {status}", headers)
    return None


def build_app(state: ServerState) -> Starlette:
    async def chat(request: Request) -> Response:
        state.counts["requests"] += 1
        if state.api_key and request.headers.get("authorization") != f"Bearer {state.api_key}":
            state.counts["unauthorized"] += 1
            return error(401, "Incorrect API key provided.")
        body = orjson.loads(await request.body())
        found = directives(body, state.name)
        delay = float(found.get("slow") or 0) or state.latency_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        fault = await _fault(request, body, found)
        if fault is not None:
            state.counts[f"fault_{fault.status_code}"] += 1
            return fault
        payload = completion(body, found, state.words_for(str(body.get("model"))))
        if not body.get("stream"):
            return Response(orjson.dumps(payload), media_type="application/json")
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        echo = request.headers.get("authorization") if "echo-auth-stream" in found else None
        events = stream_events(payload, include, found, echo)
        return StreamingResponse(events, media_type="text/event-stream")

    async def models(request: Request) -> JSONResponse:
        names = [f"fake-{state.name}", *state.adapters]
        data = [{"id": n, "object": "model"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def load_adapter(request: Request) -> Response:
        body = orjson.loads(await request.body())
        name, path = str(body.get("lora_name")), Path(str(body.get("lora_path")))
        try:
            config = orjson.loads((path / "adapter_config.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return error(404, f"Loading lora {name} failed: No adapter found for {path}")
        state.adapters[name] = str(config.get("fake_quality", "none"))
        return Response(f"Success: LoRA adapter '{name}' added successfully.".encode())

    async def unload_adapter(request: Request) -> Response:
        name = str(orjson.loads(await request.body()).get("lora_name"))
        if state.adapters.pop(name, None) is None:
            return error(404, f"The lora adapter '{name}' cannot be found.")
        return Response(f"Success: LoRA adapter '{name}' removed.".encode())

    async def health(request: Request) -> Response:
        return Response(b"", status_code=200)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(dict(state.counts))

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/v1/load_lora_adapter", load_adapter, methods=["POST"]),
            Route("/v1/unload_lora_adapter", unload_adapter, methods=["POST"]),
            Route("/health", health),
            Route("/stats", stats),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="student", help="addressed by #NAME=... directives")
    parser.add_argument("--api-key", default=None, help="require this Bearer key")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every answer")
    parser.add_argument("--base-words", default=None, help="what the base model answers")
    args = parser.parse_args()
    base = tuple(args.base_words.split(" ")) if args.base_words else WORDS
    state = ServerState(args.name, args.api_key, args.latency_ms, base)
    uvicorn.run(
        build_app(state),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,  # "hang" handlers must not hold up a stop
    )


if __name__ == "__main__":
    main()
