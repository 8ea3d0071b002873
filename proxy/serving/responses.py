"""POST /v1/responses: the same cascade as chat completions where the student can answer.

A request the student can honour (see `responses_convert.chat_request`) is decided
exactly like a chat request (same scorer, threshold, forced routes, structured-output
check), and a served student answer goes out as a Responses object or its event
stream. Otherwise, and whenever the student is not good enough, the client's own
request goes to the teacher's ``/responses`` unchanged but for the model name, and
its answer is relayed as it streams.

Rows are chat rows: ``request_json`` holds the client's body plus the ``messages``
the cascade saw, so the trainer learns from them like from chat rows.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from proxy.errors import ProxyError, UpstreamError
from proxy.serving import records
from proxy.serving.chat import ChatService, Decision
from proxy.serving.passthrough import PassthroughService, RelayCall
from proxy.serving.records import RequestContext
from proxy.serving.responses_convert import (
    chat_request,
    encode_event,
    finish_reason,
    output_text,
    response_events,
    to_response,
)

_FINAL_EVENTS = ("response.completed", "response.incomplete")


def _degraded(decision: Decision) -> str | None:
    """Without a teacher a student answer below the bar is served, marked as such."""
    answer = decision.answer
    if decision.reason != "no_teacher" or answer is None:
        return None
    good = (
        decision.threshold is not None
        and answer.score >= decision.threshold
        and not answer.truncated
        and answer.invalid_output is None
    )
    return None if good else "no-teacher"


def _teacher_hook(record: dict[str, Any]) -> Any:
    """Notes the teacher's final Responses object (JSON answer or last stream event)."""

    def hook(payload: dict[str, Any]) -> None:
        response = payload.get("response") if "type" in payload else payload
        if not isinstance(response, dict) or response.get("object") != "response":
            return
        if "type" in payload and payload["type"] not in _FINAL_EVENTS:
            return
        record.update(
            teacher_text=output_text(response),
            teacher_finish_reason=finish_reason(response),
            teacher_response_json=response,
        )

    return hook


class ResponsesService:
    def __init__(self, chat: ChatService, passthrough: PassthroughService) -> None:
        self.chat = chat
        self.passthrough = passthrough

    async def create(self, ctx: RequestContext, body: dict[str, Any]) -> Response:
        chat_body, teacher_only = chat_request(body)
        logged = {**body, "messages": chat_body["messages"]} if chat_body else body
        record = records.base_record(ctx, logged, bool(body.get("stream")))
        try:
            ctx.task = self.chat.tasks.assign(ctx.task_header, body, record)
            if chat_body is None:
                decision = Decision(False, f"unsupported:{teacher_only}")
                chat_body = {}
            else:
                decision = await self.chat.decide(ctx, chat_body, record)
            if decision.serve_student:
                return self._serve_student(ctx, body, chat_body, decision, record)
            return await self._serve_teacher(ctx, body, chat_body, decision, record)
        except ProxyError as exc:
            record.update(
                route=record.get("route") or "none", error=exc.message, error_code=exc.code
            )
            self.chat.finish(record, ctx, exc.status_code)
            raise

    def _serve_student(
        self,
        ctx: RequestContext,
        body: dict[str, Any],
        chat_body: dict[str, Any],
        decision: Decision,
        record: dict[str, Any],
        degraded: str | None = None,
    ) -> Response:
        assert decision.answer is not None
        self.chat.note_student(record, decision)
        degraded = degraded or _degraded(decision)
        record.update(route="student", reason=decision.reason, degraded=degraded)
        headers = self.chat.route_headers(ctx, "student", decision.reason, decision)
        if degraded:
            headers["x-distill-degraded"] = degraded
        response = to_response(decision.answer.payload, body)
        shadow = self.chat.maybe_shadow(chat_body, record, decision)
        if not body.get("stream"):
            self.chat.finish(record, ctx, 200, extra=shadow)
            return Response(orjson.dumps(response), media_type="application/json", headers=headers)

        async def events() -> Any:
            status = 499
            try:
                for i, event in enumerate(response_events(response)):
                    if i == 0:
                        record["ttfb_ms"] = (time.perf_counter() - ctx.started) * 1000
                    yield encode_event(event, i)
                status = 200
            finally:
                if status != 200:
                    record["error"] = "client disconnected mid-stream"
                self.chat.finish(record, ctx, status, extra=shadow)

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def _serve_teacher(
        self,
        ctx: RequestContext,
        body: dict[str, Any],
        chat_body: dict[str, Any],
        decision: Decision,
        record: dict[str, Any],
    ) -> Response:
        self.chat.note_student(record, decision)
        if decision.failure is not None:
            record["error"] = f"student: {decision.failure.error.message}"
        record.update(route="teacher", reason=decision.reason)
        headers = self.chat.route_headers(ctx, "teacher", decision.reason, decision)
        teacher = self.passthrough.teacher
        model = teacher.model_for(str(body.get("model", ""))) if teacher else body.get("model")
        teacher_body = {**body, "model": model}
        record["teacher_model"] = model
        call = RelayCall(
            "POST",
            "/responses",
            headers={"content-type": "application/json", "x-client-request-id": ctx.request_id},
            content=orjson.dumps(teacher_body),
            body=teacher_body,
        )

        def finish(status: int) -> None:
            extra = self.chat.await_student(decision, record)
            self.chat.finish(record, ctx, status, extra=extra)

        try:
            response = await self.passthrough.forward(
                ctx, call, record, finish, on_payload=_teacher_hook(record), retry=True
            )
        except UpstreamError as exc:
            if decision.answer is None:
                raise
            record["error"] = f"teacher: {exc.message}"
            return self._serve_student(
                ctx, body, chat_body, decision, record, degraded="teacher-unavailable"
            )
        response.headers.update(headers)
        return response
