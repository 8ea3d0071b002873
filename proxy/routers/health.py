"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readiness(request: Request) -> tuple[bool, dict[str, Any]]:
    state = request.app.state
    pool = state.pool
    reasons = []
    if not pool.available():
        reasons.append(f"student not ready: {pool.reason()}")
    supervisor = state.supervisor
    detail: dict[str, Any] = {
        "student": pool.status(),
        "student_version": state.active.current.version,
        "teacher_configured": state.teacher is not None,
    }
    slots = state.active.tasks() if hasattr(state.active, "tasks") else {}
    if slots:  # the per-task loop: what serves each task
        detail["task_versions"] = {task: slot.current.version for task, slot in slots.items()}
    if supervisor is not None:
        detail["supervisor"] = {
            "state": supervisor.state,
            "reason": supervisor.reason,
            "restarts": supervisor.restarts,
            "log": str(supervisor.log_path),
        }
    log_state = _log_database(state)
    if log_state is not None:
        detail["log"] = log_state
    vote = getattr(state, "vote", None)
    if vote is not None:
        # Ready without it (the generative student and the teacher still answer), but a
        # vote version cannot serve while its encoder is down: said here, and counted.
        detail["encoder"] = {"replicas": vote.pool.status(), "vote_versions": vote.loaded()}
        serving = [state.active.current, *(slot.current for slot in slots.values())]
        if any(v.kind == "vote" for v in serving) and not vote.available():
            reasons.append(f"encoder not ready: {vote.pool.reason()}")
    return not reasons, {"ready": not reasons, "reasons": reasons, **detail}


def _log_database(state: Any) -> dict[str, Any] | None:
    """The shared log database (PostgreSQL) as the writer sees it. Unreachable is degraded,
    not unready: requests are answered, their rows wait in the spill journal and are
    replayed when the database is back, so /readyz stays 200 and says so here."""
    writer: Any = getattr(state, "writer", None)
    retry = getattr(getattr(writer, "backend", None), "reconnect", None)
    if retry is None:
        return None
    stats = writer.stats
    body: dict[str, Any] = {"database": retry.describe(), "spill_bytes": stats.spill_bytes}
    if retry.down:
        body.update(failed_tries=retry.attempts, last_error=retry.last_error)
    return body


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ready, body = readiness(request)
    return JSONResponse(body, status_code=200 if ready else 503)
