"""Relaying the teacher's SSE stream to the client as it arrives, while reassembling
it for the log. Retries happen only before the first byte; a failure after it
ends the stream with an OpenAI error event, then ``data: [DONE]``, and is never
passed off as a complete answer. The row is logged before ``[DONE]`` goes out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import orjson
from starlette.responses import StreamingResponse

from proxy.errors import UpstreamError
from proxy.serving import records
from proxy.serving.records import RequestContext
from proxy.serving.sse import DONE, ChunkAccumulator, SSEParser, encode
from proxy.upstream.teacher import TeacherClient


def teacher_client_view(payload: dict[str, Any], added_logprobs: bool) -> dict[str, Any]:
    if not added_logprobs:
        return payload
    return {**payload, "choices": [{**c, "logprobs": None} for c in payload.get("choices") or []]}


def error_event(message: str, code: str = "upstream_stream_error") -> bytes:
    return encode(
        {"error": {"message": message, "type": "upstream_error", "param": None, "code": code}}
    )


class _ChunkFilter:
    """Removes what the proxy added to the teacher's request from what the client sees."""

    def __init__(self, body: dict[str, Any], added_logprobs: bool) -> None:
        self.strip_logprobs = added_logprobs
        self.strip_usage = not (body.get("stream_options") or {}).get("include_usage")

    def __call__(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        if self.strip_usage:
            if not chunk.get("choices") and chunk.get("usage"):
                return None
            chunk.pop("usage", None)
        if self.strip_logprobs:
            for choice in chunk.get("choices") or []:
                choice["logprobs"] = None
        return chunk


async def relay_teacher_stream(
    teacher: TeacherClient,
    request: dict[str, Any],
    added_logprobs: bool,
    body: dict[str, Any],
    ctx: RequestContext,
    record: dict[str, Any],
    headers: dict[str, str],
    finish: Callable[[int], None],
    scrub: Callable[[str], str] = str,
) -> StreamingResponse:
    """`scrub` cleans the teacher's mid-stream error messages (they may echo its key)."""
    stack = AsyncExitStack()
    started = time.perf_counter()
    try:
        response, retries = await stack.enter_async_context(teacher.stream(request, added_logprobs))
    except BaseException:
        await stack.aclose()
        raise
    state = _RelayState(_ChunkFilter(body, added_logprobs), scrub)
    logged = False

    def log_row() -> None:
        nonlocal logged
        if logged:
            return
        logged = True
        latency = (time.perf_counter() - started) * 1000
        records.add_teacher(record, state.acc.result(), latency, retries)
        if state.error:
            record["error"] = f"teacher stream: {state.error}"
        finish(state.status)

    async def gen() -> AsyncIterator[bytes]:
        try:
            async for piece in state.relay(response, ctx, record):
                yield piece
            log_row()  # before [DONE]: a client that has the whole answer has its row logged
            yield DONE
        finally:
            await stack.aclose()
            log_row()  # the client left mid-stream

    return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)


class _RelayState:
    def __init__(self, chunk_filter: _ChunkFilter, scrub: Callable[[str], str] = str) -> None:
        self.scrub = scrub
        self.acc = ChunkAccumulator()
        self.filter = chunk_filter
        self.status = 499  # until the stream completes, the client went away
        self.error: str | None = None
        self.done = False

    async def relay(
        self, response: httpx.Response, ctx: RequestContext, record: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        parser = SSEParser()
        try:
            async for raw in response.aiter_raw():
                for data in parser.feed(raw):
                    out = self._handle(data)
                    if out is not None:
                        record.setdefault("ttfb_ms", (time.perf_counter() - ctx.started) * 1000)
                        yield out
        except (httpx.HTTPError, UpstreamError) as exc:
            self.error = f"connection lost: {type(exc).__name__}"
        if self.error is None and not (self.done and self.acc.saw_finish):
            self.error = "stream ended before the answer was complete"
        if self.error is not None:
            self.status = 502
            yield error_event(f"teacher stream failed: {self.error}")
        else:
            self.status = 200

    def _handle(self, data: str) -> bytes | None:
        if data.strip() == "[DONE]":
            self.done = True
            return None
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.error = "teacher sent an invalid stream event"
            return None
        if not isinstance(chunk, dict):
            return None
        choices = chunk.get("choices")
        if choices is not None and not (
            isinstance(choices, list) and all(isinstance(c, dict) for c in choices)
        ):
            self.error = "teacher sent a malformed stream event"
            return None
        if "error" in chunk:
            message = chunk["error"].get("message") if isinstance(chunk["error"], dict) else None
            self.error = self.scrub(str(message or chunk["error"]))
            return None
        self.acc.add(chunk)
        out = self.filter(chunk)
        return encode(out) if out is not None else None
