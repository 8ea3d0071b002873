"""The log row of an API request (``/v1/...``) the proxy refused or failed before any
service logged it (401, 400, 403, 404, 405, 413, 429, 500): status, error code, route
``none``.

What it keeps is bounded by who is asking: without an accepted key the body is not
kept (an unauthenticated client must not be able to fill the log), and the
``Authorization`` header is never part of a row.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import HTTPConnection

from proxy.errors import ProxyError
from proxy.serving.records import RequestContext
from proxy.tasks.identity import TASK_HEADER
from proxy.tasks.resolve import TaskResolver

# The API's requests are logged; refusals of the admin API, the dashboard, probes and
# stray paths are not requests of an app (and would let a scanner fill the log).
API_PREFIX = "/v1/"
# The distilled endpoints: their requests belong to a task, refused or not (the relayed
# ones have none, see docs/tasks.md).
TASK_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/responses"})


def _body(conn: HTTPConnection, ctx: RequestContext | None) -> dict[str, Any] | None:
    body = getattr(conn.state, "body", None)
    return body if ctx is not None and isinstance(body, dict) else None


def _task(
    conn: HTTPConnection, ctx: RequestContext | None, body: dict[str, Any] | None
) -> str | None:
    """The row's task: as resolved, else as far as the header and a kept body tell."""
    if ctx is not None and ctx.task is not None:
        return ctx.task.name
    if conn.url.path.rstrip("/") not in TASK_ENDPOINTS:
        return None
    chat = getattr(conn.app.state, "chat", None)
    resolver: TaskResolver = chat.tasks if chat is not None else TaskResolver()
    return resolver.lenient(conn.headers.get(TASK_HEADER), body).name


def refused_record(conn: HTTPConnection, exc: ProxyError) -> dict[str, Any]:
    ctx: RequestContext | None = getattr(conn.state, "ctx", None)
    request_id = str(getattr(conn.state, "request_id", "") or "missing-id")
    received = getattr(conn.state, "received", None)
    now = time.perf_counter()
    elapsed_ms = (now - received) * 1000 if isinstance(received, float) else None
    finished = datetime.now(UTC)
    created = ctx.created_at if ctx is not None else finished
    if ctx is None and elapsed_ms is not None:
        created = finished - timedelta(milliseconds=elapsed_ms)
    body = _body(conn, ctx)
    record: dict[str, Any] = {
        "task": _task(conn, ctx, body),
        "id": request_id,
        "request_id": request_id,
        "attempt": 1,
        "endpoint": conn.url.path[:300],
        "created_at": created,
        "finished_at": finished,
        "client_key_hash": ctx.client_key_hash if ctx is not None else None,
        "tag": ctx.tag if ctx is not None else None,
        "route": "none",
        "reason": "refused" if exc.status_code < 500 else "error",
        "status_code": exc.status_code,
        "error": exc.message[:1000],
        "error_code": exc.code,
        "total_latency_ms": elapsed_ms,
        "shadow": False,
        "teacher_retries": 0,
    }
    if body is not None:
        model = body.get("model")
        record.update(
            requested_model=model if isinstance(model, str) else None,
            stream=bool(body.get("stream")),
            store=body.get("store") is not False,
            request_json=body,
        )
    return record


def log_refused(conn: HTTPConnection, exc: ProxyError) -> None:
    """Logs the refusal unless the request's service already logged its row."""
    ctx: RequestContext | None = getattr(conn.state, "ctx", None)
    if (ctx is not None and ctx.logged) or not conn.url.path.startswith(API_PREFIX):
        return
    state = conn.app.state
    sink = getattr(state, "sink", None)
    if sink is None:  # outside the lifespan (no log writer yet)
        return
    record = refused_record(conn, exc)
    if ctx is not None:
        ctx.logged = True
    state.observer.on_finish(record)
    sink(record)
