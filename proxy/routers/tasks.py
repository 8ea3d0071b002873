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


def _serving_by_task(state: Any) -> dict[str, dict[str, Any]]:
    """Each task slot's version, threshold and calibration (a per-task loop)."""
    active = state.active
    loop = getattr(state, "loop", None)
    out: dict[str, dict[str, Any]] = {}
    for task, slot in active.tasks().items():
        current = slot.current
        threshold = state.chat.threshold_for(current)
        calibration = (
            loop.calibrator.task_status(task)
            if loop is not None
            else calibration_guess(state.settings.calibration_mode, threshold)
        )
        entry = serving_state(current.version, current.name, threshold, calibration)
        entry["own"] = slot.own
        entry["too_little_traffic"] = active.too_little_traffic(task, state.settings.train_min_rows)
        out[task] = entry
    return out


@router.get("/admin/tasks")
async def admin_tasks(
    request: Request, _: DashboardReadDep, since: SinceQuery = "24h"
) -> dict[str, Any]:
    window = _since(since)
    overrides = request.app.state.chat.tasks.overrides
    report = await read_log(request, lambda cur: task_report(cur, window, overrides))
    state = request.app.state
    return attach_serving(report, _serving(state), _serving_by_task(state))
