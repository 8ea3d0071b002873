"""Retention: request bodies and answers older than ``retention_days`` are erased.

The row stays, with everything the dashboards and budgets aggregate (timestamps,
key hash, model, route/reason, scores, token counts, latencies, status, costs); the
columns that hold what users wrote or were told become NULL, and so do the corrections
and notes of feedback older than the cutoff (ratings stay). Runs through the log
writer (the only write connection) every ``retention_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from proxy.logstore.sink import FAILURES

log = logging.getLogger(__name__)

ERASED_COLUMNS = (
    "request_json",
    "student_text",
    "student_response_json",
    "teacher_text",
    "teacher_response_json",
    "teacher_logprobs_json",
    "error",  # upstream errors can echo the request
)

_SET = ", ".join(f"{c} = NULL" for c in ERASED_COLUMNS)
_ANY = " OR ".join(f"{c} IS NOT NULL" for c in ERASED_COLUMNS)
PURGE_SQL = f"UPDATE requests SET {_SET} WHERE created_at < ? AND ({_ANY})"


def cutoff_for(days: float, now: datetime | None = None) -> datetime:
    """Naive UTC, like the `created_at` column."""
    now = now or datetime.now(UTC)
    return (now - timedelta(days=days)).astimezone(UTC).replace(tzinfo=None)


# Users' corrections and notes are what they wrote: erased on the same schedule.
FEEDBACK_PURGE_SQL = (
    "UPDATE feedback SET correction = NULL, note = NULL "
    "WHERE created_at < ? AND (correction IS NOT NULL OR note IS NOT NULL)"
)


async def purge_once(writer: Any, days: float, now: datetime | None = None) -> int:
    """Erases bodies of rows older than `days`; returns how many rows were changed."""
    cutoff = cutoff_for(days, now)
    result = await asyncio.wrap_future(writer.execute(PURGE_SQL, [cutoff]))
    await asyncio.wrap_future(writer.execute(FEEDBACK_PURGE_SQL, [cutoff]))
    return int(result[0][0]) if result else 0  # DuckDB's UPDATE yields its row count


async def run_retention(
    writer: Any, days: float, interval: float, leading: Callable[[], bool] = lambda: True
) -> None:
    """The periodic job (an asyncio task of the app's lifespan); first pass at start.
    On a shared log only the leader purges (`leading`): one pass, not one per replica."""
    while True:
        if not leading():
            await asyncio.sleep(interval)
            continue
        try:
            erased = await purge_once(writer, days)
        except FAILURES as exc:
            log.warning("retention pass failed (will retry): %s", exc)
        else:
            if erased:
                log.info(
                    "retention: erased bodies of %d request(s) older than %g days", erased, days
                )
        await asyncio.sleep(interval)
