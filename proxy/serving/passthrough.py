"""Pass-through: the OpenAI endpoints the proxy does not distill, relayed to the teacher.

The body goes out byte for byte (JSON, multipart, binary) with the teacher's key in
place of the client's; the answer comes back with its status and content headers,
streamed as it arrives (SSE and binary bodies alike). The client's own auth, limits
and request id apply as on every route, and each call leaves one log row (route
``passthrough``) with the usage and cost the endpoint reports. Nothing is retried:
a relayed body may be a one-shot upload, so the teacher's answer (429 with its
``Retry-After`` included) goes to the client, whose SDK retries.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.responses import Response, StreamingResponse

from proxy.errors import ProxyError, ServiceUnavailable, UpstreamError
from proxy.serving import records
from proxy.serving.observer import RequestObserver
from proxy.serving.records import RequestContext
from proxy.serving.sse import SSEParser
from proxy.settings import Settings
from proxy.upstream.client import RETRYABLE_STATUS, decode_json, status_error
from proxy.upstream.teacher import TeacherClient

RecordSink = Callable[[dict[str, Any]], None]
PayloadHook = Callable[[dict[str, Any]], None]

# Request headers that describe the body or the API version; everything else the
# client sent (its key, its organisation, cookies) stays with the proxy.
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "openai-beta", "idempotency-key")
KEPT_RESPONSE_HEADERS = (
    "content-type",
    "content-disposition",
    "cache-control",
    "retry-after",
    "openai-processing-ms",
    "openai-version",
)
_LOGGED_RESPONSE_BYTES = 64 * 1024  # bigger answers (embeddings, file contents) log a summary


@dataclass
class RelayCall:
    """One request to relay: what the client sent, minus its credentials."""

    method: str
    path: str
    """Path below the teacher's base URL, e.g. ``/embeddings`` (as the client encoded it)."""
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    body: dict[str, Any] | None = None
    """The JSON body when there is one (logged, and used for the limits' estimate)."""
    form: dict[str, Any] | None = None
    """A multipart body's text fields and file sizes (`multipart_summary`), for the log."""


def usage_tokens(payload: dict[str, Any]) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of any OpenAI answer: chat, completions, embeddings,
    responses (``input_tokens``/``output_tokens``, also inside a ``response`` event)."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        inner = payload.get("response")
        usage = inner.get("usage") if isinstance(inner, dict) else None
    if not isinstance(usage, dict):
        return None, None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if isinstance(prompt, int) and completion is None:
        completion = 0  # embeddings: input only
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def logged_payload(payload: dict[str, Any], size: int) -> dict[str, Any]:
    if size <= _LOGGED_RESPONSE_BYTES:
        return payload
    summary = {k: v for k, v in payload.items() if not isinstance(v, list | dict)}
    summary["usage"] = payload.get("usage")
    summary["truncated_bytes"] = size
    return summary


def _error_fields(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    error = payload.get("error")
    if isinstance(error, dict):
        message, code = error.get("message"), error.get("code")
        return (str(message) if message else None, str(code) if code else None)
    return (str(error), None) if error else (None, None)


def client_headers(response: httpx.Response) -> dict[str, str]:
    headers = {k: v for k, v in response.headers.items() if k.lower() in KEPT_RESPONSE_HEADERS}
    headers.update(
        {k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit-")}
    )
    upstream_id = response.headers.get("x-request-id")
    if upstream_id:
        headers["x-upstream-request-id"] = upstream_id
    return headers


class PassthroughService:
    def __init__(
        self,
        settings: Settings,
        teacher: TeacherClient | None,
        sink: RecordSink,
        observer: RequestObserver,
    ) -> None:
        self.settings = settings
        self.teacher = teacher
        self._sink = sink
        self._observer = observer

    def enabled(self, name: str) -> bool:
        return name in self.settings.passthrough_endpoints

    def record(self, ctx: RequestContext, call: RelayCall) -> dict[str, Any]:
        body = call.body or {}
        record = records.base_record(ctx, body, bool(body.get("stream")))
        record.update(route="passthrough", reason="not_distilled", prompt_hash=None)
        model = body.get("model")
        if call.form is not None:
            model = call.form["multipart"].get("model")
            record.update(request_json=call.form, requested_model=model)
        elif call.body is None:
            record["request_json"] = None
        elif len(call.content) > self.settings.max_body_bytes:
            record["request_json"] = {"model": model, "truncated_bytes": len(call.content)}
        record["teacher_model"] = model if isinstance(model, str) else None
        return record

    async def relay(self, ctx: RequestContext, call: RelayCall) -> Response:
        record = self.record(ctx, call)
        try:
            response = await self.forward(
                ctx, call, record, finish=lambda s: self.finish(record, ctx, s)
            )
        except ProxyError as exc:
            record.update(error=record.get("error") or exc.message, error_code=exc.code)
            self.finish(record, ctx, exc.status_code)
            raise
        response.headers["x-distill-route"] = "passthrough"
        return response

    def finish(self, record: dict[str, Any], ctx: RequestContext, status: int) -> None:
        records.finish(record, ctx, time.perf_counter(), status)
        ctx.logged = True
        self._observer.on_finish(record)
        self._sink(record)

    async def forward(
        self,
        ctx: RequestContext,
        call: RelayCall,
        record: dict[str, Any],
        finish: Callable[[int], None],
        on_payload: PayloadHook | None = None,
        retry: bool = False,
    ) -> Response:
        """Sends the call to the teacher and relays its answer; `finish(status)` runs once
        the answer is complete (or the client left). `on_payload` sees the JSON answer,
        or every JSON event of a stream. With `retry` (a JSON body the proxy built, so
        safe to send again) a 429/5xx is retried like a chat call, until the first byte."""
        if self.teacher is None:
            raise ServiceUnavailable(
                f"{ctx.endpoint} is relayed to the teacher, and no teacher is configured",
                code="no_upstream",
            )
        started = time.perf_counter()
        try:
            opened, response = await self._open(self.teacher, call, record, retry)
        except UpstreamError as exc:
            record.update(error=f"teacher: {exc.message}", error_code=exc.code)
            self._observer.on_upstream_error("teacher", type(exc).__name__)
            raise
        relay = _Relay(record, ctx, started, on_payload)
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if kind == "text/event-stream":
                return relay.stream(response, opened, finish, sse=True)
            # Only a JSON document is read whole (to log it); JSONL files, audio and
            # other bodies stream through.
            if kind != "application/json":
                return relay.stream(response, opened, finish, sse=False)
            content = await response.aread()
        except httpx.HTTPError as exc:
            await opened.__aexit__(None, None, None)
            raise UpstreamError(f"teacher: connection lost: {type(exc).__name__}") from exc
        except BaseException:
            await opened.__aexit__(None, None, None)
            raise
        await opened.__aexit__(None, None, None)
        relay.note_json(content, response.status_code)
        finish(response.status_code)
        return Response(content, status_code=response.status_code, headers=client_headers(response))

    async def _open(
        self, teacher: TeacherClient, call: RelayCall, record: dict[str, Any], retry: bool
    ) -> tuple[Any, httpx.Response]:
        async def attempt(timeout: float) -> tuple[Any, httpx.Response]:
            opened = teacher.upstream.open_raw(
                call.method,
                call.path,
                params=call.params,
                headers=call.headers,
                content=call.content,
                timeout=timeout,
            )
            response = await opened.__aenter__()
            if retry and response.status_code in RETRYABLE_STATUS:
                content = await response.aread()
                await opened.__aexit__(None, None, None)
                raise status_error("teacher", response, _json_or_empty(content))
            return opened, response

        if not retry:
            return await attempt(self.settings.teacher_timeout)
        result, retries = await teacher.with_retries(attempt)
        record["teacher_retries"] = retries
        return result


def _json_or_empty(content: bytes) -> dict[str, Any]:
    try:
        return decode_json(content) if content else {}
    except UpstreamError:
        return {}


class _Relay:
    """Notes what the teacher answered into the row while it goes to the client."""

    def __init__(
        self,
        record: dict[str, Any],
        ctx: RequestContext,
        started: float,
        on_payload: PayloadHook | None,
    ) -> None:
        self.record = record
        self.ctx = ctx
        self.started = started
        self.on_payload = on_payload

    def _latency(self) -> None:
        self.record["teacher_latency_ms"] = (time.perf_counter() - self.started) * 1000

    def note_payload(self, payload: dict[str, Any]) -> None:
        prompt, completion = usage_tokens(payload)
        if prompt is not None:
            self.record.update(teacher_prompt_tokens=prompt, teacher_completion_tokens=completion)
        model = payload.get("model") or (payload.get("response") or {}).get("model")
        if isinstance(model, str):
            self.record["teacher_model"] = model
        if self.on_payload is not None:
            self.on_payload(payload)

    def note_json(self, content: bytes, status: int) -> None:
        self._latency()
        try:
            payload = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            return
        if status >= 400:
            message, code = _error_fields(payload)
            self.record.update(error=f"teacher: {message or status}", error_code=code)
            return
        self.record["teacher_response_json"] = logged_payload(payload, len(content))
        self.note_payload(payload)

    def note_event(self, data: str) -> None:
        if data.strip() == "[DONE]":
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(event, dict):
            self.note_payload(event)

    def stream(
        self, response: httpx.Response, opened: Any, finish: Callable[[int], None], sse: bool
    ) -> StreamingResponse:
        parser = SSEParser() if sse else None
        status = response.status_code
        self.record["stream"] = self.record.get("stream") or sse

        async def body() -> AsyncIterator[bytes]:
            outcome = 499  # until the last byte went out, the client may have left
            try:
                async for piece in response.aiter_bytes():
                    self.record.setdefault(
                        "ttfb_ms", (time.perf_counter() - self.ctx.started) * 1000
                    )
                    if parser is not None:
                        for data in parser.feed(piece):
                            self.note_event(data)
                    yield piece
                outcome = status
            except (httpx.HTTPError, UpstreamError) as exc:
                self.record["error"] = f"teacher stream: connection lost: {type(exc).__name__}"
                outcome = 502
            finally:
                await opened.__aexit__(None, None, None)
                self._latency()
                finish(outcome)

        return StreamingResponse(body(), status_code=status, headers=client_headers(response))
