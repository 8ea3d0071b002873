"""Builds the log row (one per request, columns as in docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from proxy.logstore.hashing import prompt_hash
from proxy.tasks.resolve import Task


@dataclass
class RequestContext:
    request_id: str
    started: float
    """time.perf_counter() when the request arrived."""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    client_key_hash: str | None = None
    forced_route: str = "auto"
    tag: str | None = None
    endpoint: str = "/v1/chat/completions"
    task_header: str | None = None
    """The client's ``x-distill-task`` header as sent (checked with the body, `proxy.tasks`)."""
    task: Task | None = None
    """The request's task, once its service resolved it (`TaskResolver.assign`)."""
    logged: bool = False
    """Its row was handed to the log (the error handler then adds none)."""


def first_text(payload: dict[str, Any] | None) -> str | None:
    if not payload:
        return None
    choices = payload.get("choices") or []
    if not choices:
        return None
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else None


def first_finish_reason(payload: dict[str, Any] | None) -> str | None:
    choices = (payload or {}).get("choices") or []
    return choices[0].get("finish_reason") if choices else None


def first_logprobs(payload: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    choices = (payload or {}).get("choices") or []
    if not choices:
        return None
    return (choices[0].get("logprobs") or {}).get("content")


def without_logprobs(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy for the log: logprobs live in their own column (teacher) or are dropped."""
    out = dict(payload)
    out["choices"] = [{**c, "logprobs": None} for c in payload.get("choices") or []]
    return out


def usage_tokens(payload: dict[str, Any] | None) -> tuple[int | None, int | None]:
    usage = (payload or {}).get("usage") or {}
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


def base_record(ctx: RequestContext, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {
        "id": ctx.request_id,
        "request_id": ctx.request_id,
        "attempt": 1,
        "endpoint": ctx.endpoint,
        "created_at": ctx.created_at,
        "client_key_hash": ctx.client_key_hash,
        "requested_model": body.get("model"),
        "tag": ctx.tag or (metadata or {}).get("distill_tag"),
        "stream": stream,
        "store": body.get("store") is not False,
        "prompt_hash": prompt_hash(body.get("messages") or []),
        # Not copied: the proxy never mutates the client's body (upstream bodies are new dicts).
        "request_json": body,
        "shadow": False,
        "teacher_retries": 0,
    }


def add_student(record: dict[str, Any], payload: dict[str, Any], latency_ms: float) -> None:
    prompt, completion = usage_tokens(payload)
    record.update(
        student_text=first_text(payload),
        student_finish_reason=first_finish_reason(payload),
        student_response_json=without_logprobs(payload),
        student_prompt_tokens=prompt,
        student_completion_tokens=completion,
        student_latency_ms=latency_ms,
    )


def add_teacher(
    record: dict[str, Any], payload: dict[str, Any], latency_ms: float, retries: int
) -> None:
    prompt, completion = usage_tokens(payload)
    record.update(
        teacher_text=first_text(payload),
        teacher_finish_reason=first_finish_reason(payload),
        teacher_response_json=without_logprobs(payload),
        teacher_logprobs_json=first_logprobs(payload),
        teacher_prompt_tokens=prompt,
        teacher_completion_tokens=completion,
        teacher_latency_ms=latency_ms,
        teacher_retries=retries,
    )


def finish(record: dict[str, Any], ctx: RequestContext, now: float, status: int) -> None:
    record["finished_at"] = datetime.now(UTC)
    record["total_latency_ms"] = (now - ctx.started) * 1000
    record["status_code"] = status
