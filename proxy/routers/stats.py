"""Observability endpoints: `/metrics`, `GET /admin/stats`, `GET /admin/logs`,
`GET /admin/dashboard/data`, plus the `/dashboard` pages (see `observability.dashboard`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import duckdb
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from proxy.deps import require_admin
from proxy.errors import InvalidRequest, ServiceUnavailable
from proxy.logstore.writer import LogStoreUnavailable
from proxy.observability import reports
from proxy.observability.dashboard import router as dashboard_router
from proxy.observability.dashboard_auth import DashboardReadDep
from proxy.observability.window import parse_since

T = TypeVar("T")
router = APIRouter()
router.include_router(dashboard_router)

SinceQuery = Annotated[str, Query(description="Window: 15m, 24h, 7d, an ISO time, or all.")]


def _since(text: str) -> datetime | None:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None


async def read_log(request: Request, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    """Runs a query on the server's own DuckDB connection, off the event loop."""
    writer = request.app.state.writer
    try:
        return await asyncio.to_thread(writer.read, fn)
    except (LogStoreUnavailable, duckdb.Error) as exc:
        raise ServiceUnavailable(f"the request log is unavailable: {exc}") from None


def _live(request: Request, report: dict[str, Any]) -> dict[str, Any]:
    """What only the running server knows: the version serving now, the writer's counters."""
    state = request.app.state
    current = state.active.current
    report["student_version"] = current.version
    report["student_model"] = current.name
    report["threshold"] = state.chat.threshold_for(current)
    report["scorer"] = current.scorer or state.settings.confidence_scorer
    reports.note_teacher(report, state.teacher is not None)
    loop = getattr(state, "loop", None)
    report["calibration"] = loop.calibrator.status() if loop is not None else None
    stats = state.writer.stats
    report["log"] = {
        "queue_depth": stats.queue_depth,
        "written": stats.written,
        "spilled": stats.spilled,
        "replayed": stats.replayed,
        "dropped": stats.dropped,
        "rejected": stats.rejected,
        "write_errors": stats.write_errors,
        "held": stats.held,
        "unjournaled": stats.unjournaled,
    }
    return report


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not request.app.state.settings.metrics_public:
        require_admin(request)
    body = await asyncio.to_thread(request.app.state.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/admin/stats")
async def admin_stats(
    request: Request, _: DashboardReadDep, since: SinceQuery = "24h"
) -> dict[str, Any]:
    window = _since(since)
    report = await read_log(request, lambda cur: reports.stats_report(cur, window))
    return _live(request, report)


@router.get("/admin/logs")
async def admin_logs(
    request: Request,
    _: DashboardReadDep,
    n: Annotated[int, Query(ge=1, le=1000)] = 20,
    after_ts: str | None = None,
    after_id: str | None = None,
) -> dict[str, Any]:
    """The newest `n` requests (oldest first), or those after the cursor (`--follow`)."""
    after = (after_ts, after_id or "") if after_ts else None
    if after is not None:
        try:
            datetime.fromisoformat(after[0])
        except ValueError:
            raise InvalidRequest("after_ts must be an ISO timestamp", param="after_ts") from None
    rows = await read_log(request, lambda cur: reports.logs_report(cur, n, after))
    return {"rows": rows}


@router.get("/admin/dashboard/data")
async def dashboard_data(
    request: Request, _: DashboardReadDep, since: SinceQuery = "24h"
) -> dict[str, Any]:
    window = _since(since)
    report = await read_log(request, lambda cur: reports.dashboard_report(cur, window))
    return _live(request, report)
