"""Admin endpoints of the loop: runs, rollback, student versions, calibration (admin key)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import duckdb
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from proxy.deps import AdminDep
from proxy.errors import InvalidRequest, NotFound, ProxyError, ServiceUnavailable
from proxy.logstore.writer import LogStoreUnavailable
from proxy.loop.promotion import NothingToRollBack
from proxy.loop.runs import RunConflict
from proxy.loop.scheduler import LoopServices
from proxy.serving.student_state import StudentVersion
from proxy.tasks.identity import is_task_name
from trainer.dataset import parse_since

router = APIRouter(prefix="/admin", tags=["admin"])


class Conflict(ProxyError):
    status_code = 409
    error_type = "conflict_error"

    def __init__(self, message: str, *, code: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code)
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        out = super().body()
        out["error"].update(self.extra)
        return out


def _loop(request: Request) -> LoopServices:
    loop = getattr(request.app.state, "loop", None)
    if loop is None:
        raise ServiceUnavailable("the training loop is not running on this server")
    return loop  # type: ignore[no-any-return]


def _leading_loop(request: Request) -> LoopServices:
    """The loop, for a change only the leader of a shared log may make."""
    leader = getattr(request.app.state, "leader", None)
    if leader is not None and not leader.is_leader:
        raise Conflict(
            "This replica follows: the leader runs training, promotions and rollbacks. "
            "Send this to the leader (deploy/OPERATIONS.md: which replica leads), or retry: "
            "another replica takes over within seconds when the leader is gone.",
            code="not_leader",
        )
    return _loop(request)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _since(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(str(value))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None


def _version(version: StudentVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    out = asdict(version)
    out["closed_set"] = list(version.closed_set) if version.closed_set else None
    return out


def _task(value: Any, param: str = "task") -> str | None:
    """An optional task name as the API takes it (a checked slug)."""
    if value is None or value == "":
        return None
    if not is_task_name(value):
        raise InvalidRequest(f"{param} must be a task name (a-z, 0-9, '.', '_', '-')", param=param)
    return str(value)


def _db_errors(exc: Exception) -> ProxyError:
    return ServiceUnavailable(f"the log database is unavailable: {exc}")


@router.post("/runs", status_code=202)
async def start_run(request: Request, _: AdminDep) -> JSONResponse:
    """Starts a run now (202 with its id), or 409 with the id of the run in progress. An
    optional ``task`` trains that task (per-task loop; else the loop picks the task)."""
    loop = _leading_loop(request)
    body = await _json_body(request)
    overrides = body.get("config") or {}
    if not isinstance(overrides, dict):
        raise InvalidRequest("config must be an object of TrainConfig fields", param="config")
    task = _task(body.get("task"))
    try:
        run_id = await loop.runs.trigger(
            "manual", since=_since(body.get("since")), overrides=overrides, task=task
        )
    except RunConflict as exc:
        raise Conflict(
            f"Run {exc.running_id} is in progress; this trigger was recorded as "
            f"skipped ({exc.skipped_id}).",
            code="run_in_progress",
            extra={"run_id": exc.running_id},
        ) from None
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"Invalid training config: {exc}", param="config") from None
    except (LogStoreUnavailable, duckdb.Error) as exc:
        raise _db_errors(exc) from None
    return JSONResponse({"id": run_id, "status": "running"}, status_code=202)


@router.get("/runs")
async def list_runs(
    request: Request, _: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> dict[str, Any]:
    loop = _loop(request)
    try:
        runs = await loop.runs.list(limit)
    except (LogStoreUnavailable, duckdb.Error) as exc:
        raise _db_errors(exc) from None
    current = loop.runs.current
    return {"object": "list", "data": runs, "running": current.id if current else None}


@router.get("/runs/{run_id}")
async def get_run(request: Request, run_id: str, _: AdminDep) -> dict[str, Any]:
    try:
        run = await _loop(request).runs.get(run_id)
    except (LogStoreUnavailable, duckdb.Error) as exc:
        raise _db_errors(exc) from None
    if run is None:
        raise NotFound(f"No run {run_id!r}.", code="run_not_found")
    return run


@router.post("/runs/{run_id}/cancel", status_code=202)
async def cancel_run(request: Request, run_id: str, _: AdminDep) -> dict[str, Any]:
    if not await _loop(request).runs.cancel(run_id):
        raise NotFound(f"Run {run_id!r} is not in progress.", code="run_not_running")
    return {"id": run_id, "status": "cancelling"}


@router.post("/rollback")
async def rollback(
    request: Request, _: AdminDep, task: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    """Serves the previous student version again: of ``?task=`` (per-task loop), else of
    the version promoted last."""
    try:
        now, old = await _leading_loop(request).promoter.rollback(_task(task))
    except NothingToRollBack as exc:
        raise Conflict(str(exc), code="nothing_to_roll_back") from None
    except (LogStoreUnavailable, duckdb.Error) as exc:
        raise _db_errors(exc) from None
    return {"current": _version(now), "rolled_back": _version(old)}


@router.get("/students")
async def students(request: Request, _: AdminDep) -> dict[str, Any]:
    """The version serving now, the one a rollback returns to, and all promoted versions."""
    loop = _loop(request)
    active = request.app.state.active
    try:
        rows = await loop.store.list_versions()
    except (LogStoreUnavailable, duckdb.Error) as exc:
        raise _db_errors(exc) from None
    versions = [
        {
            **asdict(r),
            "closed_set": list(r.closed_set) if r.closed_set else None,
            "activated_at": r.activated_at.isoformat() if r.activated_at else None,
        }
        for r in rows
    ]
    tasks = {
        name: {"current": _version(slot.current), "previous": _version(slot.previous),
               "own": slot.own}
        for name, slot in active.tasks().items()
    }  # fmt: skip
    return {
        "current": _version(active.current),
        "previous": _version(active.previous),
        "versions": versions,
        "tasks": tasks,
    }


@router.get("/calibration")
async def calibration(request: Request, _: AdminDep) -> dict[str, Any]:
    """Threshold per version and its evidence (pairs, agreement and its interval)."""
    return _loop(request).calibrator.report()
