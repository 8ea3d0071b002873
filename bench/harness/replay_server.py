"""A replay teacher: an OpenAI-compatible chat server that answers for benchmark tasks.

It stands in for a paid API so benchmark numbers are reproducible. Plain OpenAI
protocol (nothing proxy-specific): each request goes to the task whose prompt it carries
(`Answerer.claims`), which answers at its configured accuracy with plausible mistakes; a
configured latency, usage tokens, stream and non-stream, `n`, and
`logprobs`/`top_logprobs` (k <= 20, like OpenAI; more is a 400). ``GET /stats`` counts
calls, tokens and spend for the harness. The command lines are each benchmark's
(`bench.banking77.replay_teacher`, `bench.mixed.replay_teacher`); `serve` runs one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from bench.harness.hashing import unit_hash
from bench.harness.replay_format import (
    Choice,
    Completion,
    error_body,
    full_response,
    stream_chunks,
)
from bench.harness.task import Answerer
from bench.harness.tokens import Tokenizer

MAX_TOP_LOGPROBS = 20
MAX_N = 128


@dataclass(slots=True)
class TeacherConfig:
    """Behaviour knobs of the replay teacher. Prices are USD per million tokens."""

    accuracy: float = 0.92
    latency_ms: float = 300.0
    jitter: float = 0.2
    price_in: float = 2.5
    price_out: float = 10.0
    model: str = "replay-teacher"
    seed: int = 0
    api_key: str | None = None
    # Per task where a teacher answers for several (`accuracy` is then the first task's).
    task_accuracy: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class TeacherStats:
    """Running totals the harness reads back from ``GET /stats``."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    by_status: dict[str, int] = field(default_factory=dict)


class BadRequest(ValueError):
    """A request OpenAI would refuse with a 4xx."""

    def __init__(self, message: str, param: str | None, code: str | None, status: int = 400):
        super().__init__(message)
        self.param, self.code, self.status = param, code, status


def _int_param(body: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"Invalid type for '{name}': expected an integer.", name, "invalid_type")
    if value < low:
        raise BadRequest(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if value > high:
        raise BadRequest(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def _query(messages: Any) -> str:
    """Text of the last user message (string content or text parts)."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", "messages", "invalid_type")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise BadRequest("No user message in 'messages'.", "messages", None)


def _message_text(messages: list[Any]) -> list[str]:
    texts = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        texts.append(content if isinstance(content, str) else orjson.dumps(content).decode())
    return texts


class ReplayTeacher:
    """Builds completions from requests; independent of the HTTP layer."""

    def __init__(self, cfg: TeacherConfig, answerers: list[Answerer], tokenizer: Tokenizer) -> None:
        if not answerers:
            raise ValueError("a replay teacher needs at least one task")
        self.cfg, self.answerers, self.tokenizer = cfg, answerers, tokenizer
        self.stats = TeacherStats()
        self._counts: dict[str, int] = {}

    def _count(self, text: str) -> int:
        # The long system prompt repeats on every request: count it once.
        cached = self._counts.get(text)
        if cached is None:
            cached = self.tokenizer.count(text)
            if len(text) > 200 and len(self._counts) < 64:
                self._counts[text] = cached
        return cached

    def prompt_tokens(self, messages: list[Any]) -> int:
        # OpenAI's chat format adds about 4 tokens per message and 3 to prime the reply.
        return sum(self._count(t) + 4 for t in _message_text(messages)) + 3

    def delay(self, query: str) -> float:
        u = unit_hash(self.cfg.seed, "latency", query)
        return max(0.0, self.cfg.latency_ms * (1 + self.cfg.jitter * (2 * u - 1))) / 1000

    def answerer_for(self, messages: list[Any]) -> Answerer:
        """The task whose prompt the request carries; the first task when none claims it
        (a teacher answers whatever it is sent)."""
        if len(self.answerers) > 1:
            for answerer in self.answerers:
                if answerer.claims(messages):
                    return answerer
        return self.answerers[0]

    def _choice(
        self,
        answerer: Answerer,
        query: str,
        sample: int,
        top_k: int | None,
        max_tokens: int | None,
    ) -> Choice:
        key = f"{self.cfg.seed}|{query}|{sample}"
        tokens, logprobs = answerer.choice(query, sample, top_k, key)
        finish = "stop"
        if max_tokens is not None and len(tokens) > max_tokens:
            tokens, finish = tokens[:max_tokens], "length"
            logprobs = None if logprobs is None else logprobs[:max_tokens]
        return Choice(tokens=tokens, logprobs=logprobs, finish_reason=finish)

    def complete(self, body: dict[str, Any]) -> tuple[Completion, str]:
        """Validates the request like OpenAI does and builds the completion."""
        query = _query(body.get("messages"))
        n = _int_param(body, "n", 1, MAX_N, 1)
        top_k = _int_param(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, 0)
        if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
            raise BadRequest(
                "Invalid value: 'top_logprobs' is only allowed when 'logprobs' is true.",
                "top_logprobs",
                "invalid_value",
            )
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None:
            max_tokens = _int_param({"max_tokens": max_tokens}, "max_tokens", 1, 1 << 20, 1)
        want_lp = top_k if body.get("logprobs") is True else None
        answerer = self.answerer_for(body["messages"])
        choices = [self._choice(answerer, query, i, want_lp, max_tokens) for i in range(n)]
        options = body.get("stream_options") or {}
        digest = hashlib.sha256(f"{query}|{time.time_ns()}".encode()).hexdigest()[:24]
        completion = Completion(
            id=f"chatcmpl-replay{digest}",
            created=int(time.time()),
            model=str(body.get("model") or self.cfg.model),
            choices=choices,
            prompt_tokens=self.prompt_tokens(body["messages"]),
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        )
        self._account(completion)
        return completion, query

    def _account(self, c: Completion) -> None:
        s = self.stats
        s.requests += 1
        s.prompt_tokens += c.prompt_tokens
        s.completion_tokens += c.completion_tokens
        s.cost_usd += (
            c.prompt_tokens * self.cfg.price_in + c.completion_tokens * self.cfg.price_out
        ) / 1e6


def _error(status: int, message: str, param: str | None, code: str | None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    return JSONResponse(error_body(message, param, code, kind), status_code=status)


def _authorised(request: Request, key: str | None) -> bool:
    return key is None or request.headers.get("authorization") == f"Bearer {key}"


async def _stream(completion: Completion, delay: float) -> AsyncIterator[bytes]:
    await asyncio.sleep(delay)
    for frame in stream_chunks(completion):
        yield frame


async def _chat(teacher: ReplayTeacher, request: Request) -> Response:
    if not _authorised(request, teacher.cfg.api_key):
        return _error(401, "Incorrect API key provided.", None, "invalid_api_key")
    try:
        body = orjson.loads(await request.body())
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.", None, None)
        completion, query = teacher.complete(body)
    except orjson.JSONDecodeError:
        teacher.stats.errors += 1
        return _error(400, "We could not parse the JSON body of your request.", None, None)
    except BadRequest as exc:
        teacher.stats.errors += 1
        return _error(exc.status, str(exc), exc.param, exc.code)
    delay = teacher.delay(query)
    if body.get("stream") is True:
        return StreamingResponse(_stream(completion, delay), media_type="text/event-stream")
    await asyncio.sleep(delay)
    return Response(orjson.dumps(full_response(completion)), media_type="application/json")


def _stats(teacher: ReplayTeacher) -> dict[str, Any]:
    s, cfg = teacher.stats, teacher.cfg
    return {
        "requests": s.requests, "errors": s.errors, "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens, "cost_usd": s.cost_usd,
        "price_in": cfg.price_in, "price_out": cfg.price_out, "accuracy": cfg.accuracy,
        "tokenizer": teacher.tokenizer.name,
    } | ({"task_accuracy": cfg.task_accuracy} if cfg.task_accuracy else {})  # fmt: skip


def create_app(teacher: ReplayTeacher) -> FastAPI:
    """The HTTP face of a `ReplayTeacher` (plus ``GET /stats`` for the harness)."""
    app = FastAPI(title="replay teacher", docs_url=None, redoc_url=None)
    app.state.teacher = teacher

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return _stats(teacher)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": teacher.cfg.model, "object": "model", "created": 0, "owned_by": "replay"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await _chat(teacher, request)

    return app


def serve(teacher: ReplayTeacher, host: str, port: int) -> None:
    """Runs the teacher's HTTP app until stopped (the command lines call this)."""
    import uvicorn

    uvicorn.run(create_app(teacher), host=host, port=port, log_level="warning", access_log=False)


def add_server_args(p: argparse.ArgumentParser) -> None:
    """The flags every replay teacher command shares (`config_from_args` reads them)."""
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8101)
    p.add_argument("--latency-ms", type=float, default=300.0)
    p.add_argument("--jitter", type=float, default=0.2, help="latency spread, fraction (+/-)")
    p.add_argument("--price-in", type=float, default=2.5, help="USD per 1M prompt tokens")
    p.add_argument("--price-out", type=float, default=10.0, help="USD per 1M completion tokens")
    p.add_argument("--model", default="replay-teacher")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api-key", default=None, help="require this Bearer key (default: any)")
    p.add_argument("--tokenizer", choices=["auto", "smollm2", "simple"], default="auto")


def config_from_args(args: argparse.Namespace, accuracy: float) -> TeacherConfig:
    return TeacherConfig(
        accuracy=accuracy,
        latency_ms=args.latency_ms,
        jitter=args.jitter,
        price_in=args.price_in,
        price_out=args.price_out,
        model=args.model,
        seed=args.seed,
        api_key=args.api_key,
    )
