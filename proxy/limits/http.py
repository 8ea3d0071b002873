"""The FastAPI side of the limits: who the client is, and the admission dependency."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import duckdb
from fastapi import Depends, Request

from proxy.deps import ChatBodyDep, ContextDep, client_host
from proxy.limits.limiter import RateLimiter
from proxy.limits.spend import day_start, month_start
from proxy.logstore.sink import FAILURES
from proxy.serving.records import RequestContext

log = logging.getLogger(__name__)


def client_identity(request: Request, ctx: RequestContext) -> str | None:
    """The key's digest; without keys ``ip:<address>`` (or None when
    ``limit_without_keys = "off"``)."""
    if ctx.client_key_hash:
        return ctx.client_key_hash
    if request.app.state.settings.limit_without_keys != "ip":
        return None
    host = client_host(request)
    return f"ip:{host}" if host else None


def check_limits(request: Request, ctx: RequestContext, body: Mapping[str, Any]) -> None:
    """Admits the request against its client's limits or raises `RateLimited` (429)."""
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is None or not limiter.enabled:
        return
    identity = client_identity(request, ctx)
    if identity is not None:
        limiter.admit(identity, ctx.request_id, body)


async def enforce_limits(request: Request, ctx: ContextDep, body: ChatBodyDep) -> None:
    """Runs after the key check and body validation: raises `RateLimited` (429)."""
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is not None and getattr(limiter, "blocking", False):
        # Shared counters (Redis or PostgreSQL) cost a round trip: off the event loop.
        identity = client_identity(request, ctx) if limiter.enabled else None
        if identity is not None:
            await asyncio.to_thread(limiter.admit, identity, ctx.request_id, body)
        return
    check_limits(request, ctx, body)


LimitDep = Annotated[None, Depends(enforce_limits)]


def _spend_query(conn: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    day = day_start(now).replace(tzinfo=None)
    month = month_start(now).replace(tzinfo=None)
    return conn.execute(
        "SELECT client_key_hash, coalesce(sum(cost_usd) FILTER (WHERE created_at >= ?), 0), "
        "coalesce(sum(cost_usd), 0) FROM requests "
        "WHERE client_key_hash IS NOT NULL AND created_at >= ? GROUP BY client_key_hash",
        [day, month],
    ).fetchall()


async def seed_spend_from_log(limiter: RateLimiter, writer: Any) -> None:
    """Spend budgets survive a restart: this UTC day's and month's spend per key."""
    if not limiter.enabled:
        return
    try:
        rows = await asyncio.to_thread(writer.read, _spend_query)
    except FAILURES as exc:
        log.warning("could not read past spend for the budgets: %s", exc)
        return
    limiter.seed_spend((str(key), float(day), float(month)) for key, day, month in rows)
