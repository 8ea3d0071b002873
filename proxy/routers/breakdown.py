"""``GET /admin/breakdown?by=label|tag``: where the student is weak (`distill stats --by`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from proxy.observability.breakdown import breakdown
from proxy.observability.dashboard_auth import DashboardReadDep
from proxy.routers.stats import SinceQuery, _since, read_log

router = APIRouter(tags=["admin"])


@router.get("/admin/breakdown")
async def admin_breakdown(
    request: Request,
    _: DashboardReadDep,
    by: Annotated[str, Query(pattern="^(label|tag)$")] = "label",
    since: SinceQuery = "24h",
) -> dict[str, Any]:
    window = _since(since)
    return await read_log(request, lambda cur: breakdown(cur, by, window))
