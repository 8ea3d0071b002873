"""``GET /admin/tasks``: the per-task table (`distill stats --by task`), see
`proxy.observability.task_stats`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from proxy.observability.dashboard_auth import DashboardReadDep
from proxy.observability.task_stats import (
    attach_serving,
    calibration_guess,
    serving_state,
    task_report,
)
from proxy.routers.stats import SinceQuery, _since, read_log

router = APIRouter(tags=["admin"])


def _serving(state: Any) -> dict[str, Any]:
    current = state.active.current
    threshold = state.chat.threshold_for(current)
    loop = getattr(state, "loop", None)
    calibration = (
        loop.calibrator.status()
        if loop is not None
        else calibration_guess(state.settings.calibration_mode, threshold)
    )
    return serving_state(current.version, current.name, threshold, calibration)


@router.get("/admin/tasks")
async def admin_tasks(
    request: Request, _: DashboardReadDep, since: SinceQuery = "24h"
) -> dict[str, Any]:
    window = _since(since)
    overrides = request.app.state.chat.tasks.overrides
    report = await read_log(request, lambda cur: task_report(cur, window, overrides))
    return attach_serving(report, _serving(request.app.state))
