"""Read queries over the request log for stats, the dashboard and the CLI.

Every function takes a DuckDB connection or cursor (e.g. inside `LogWriter.read`
or from `snapshot.open_readonly`) and returns plain JSON-serialisable values:
timestamps as ISO-8601 strings (UTC), JSON columns parsed.

Definitions used throughout:
- fallback rate: share of the cascade's requests answered by the teacher (``route =
  'teacher'``; pass-through calls and refused requests are not the cascade's);
- teacher calls: requests for which the teacher was called at all (served,
  shadow-sampled or failed), i.e. ``teacher_latency_ms IS NOT NULL``;
- degraded: answers served as a stand-in (``degraded IS NOT NULL``: the teacher
  failed, or none is configured and the student was not confident);
- no_teacher: student answers served because no teacher was configured
  (``reason = 'no_teacher'``, degraded or not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import orjson

from proxy.logstore.rows import utc_naive

RECENT_COLUMNS = (
    "id",
    "created_at",
    "finished_at",
    "requested_model",
    "tag",
    "task",
    "stream",
    "route",
    "reason",
    "degraded",
    "scorer",
    "confidence",
    "threshold",
    "student_version",
    "status_code",
    "error",
    "total_latency_ms",
    "ttfb_ms",
    "cost_usd",
    "counterfactual_cost_usd",
    "shadow",
)
_RUN_JSON = ("config_json", "metrics_json")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def _one(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> tuple[Any, ...]:
    # fetchall: DuckDB 2 keeps a partly fetched result open on the connection.
    return tuple(conn.execute(sql, params).fetchall()[0])


def _since(since: datetime | None) -> tuple[str, list[Any]]:
    if since is None:
        return "", []
    return " WHERE created_at >= ?", [utc_naive(since)]


# The fallback rate is over requests the cascade decided: not pass-through calls
# (embeddings, files, ...) and not requests refused before it (401, 429, ...).
DECIDED = "route IS DISTINCT FROM 'passthrough' AND reason IS DISTINCT FROM 'refused'"


def _ratio(part: float | None, whole: float | None) -> float | None:
    return float(part or 0) / whole if whole else None


def summary(conn: duckdb.DuckDBPyConnection, since: datetime | None = None) -> dict[str, Any]:
    """Totals: requests, route mix, fallback rate, cost vs teacher-only, latency by route."""
    where, params = _since(since)
    total = _one(
        conn,
        "SELECT count(*), count(*) FILTER (route = 'teacher'), "
        "count(*) FILTER (teacher_latency_ms IS NOT NULL), "
        "coalesce(sum(cost_usd), 0), coalesce(sum(counterfactual_cost_usd), 0), "
        "count(*) FILTER (status_code >= 400), count(*) FILTER (reason = 'no_teacher'), "
        f"count(*) FILTER ({DECIDED}) "
        f"FROM requests{where}",
        params,
    )
    requests, teacher, teacher_calls, cost, counterfactual, errors, no_teacher, decided = total
    degraded = conn.execute(
        f"SELECT degraded, count(*) FROM requests{where}{' AND' if where else ' WHERE'} "
        "degraded IS NOT NULL GROUP BY ALL ORDER BY 1",
        params,
    ).fetchall()
    by_route = conn.execute(
        "SELECT coalesce(route, 'unknown') AS route, count(*) AS requests, "
        "quantile_cont(total_latency_ms, 0.5) AS p50_ms, "
        "quantile_cont(total_latency_ms, 0.95) AS p95_ms "
        f"FROM requests{where} GROUP BY ALL ORDER BY route",
        params,
    ).fetchall()
    return {
        "since": _plain(utc_naive(since)) if since else None,
        "requests": requests,
        "routes": {route: n for route, n, _, _ in by_route},
        "fallback_rate": _ratio(teacher, decided),
        "teacher_calls": teacher_calls,
        "errors": errors,
        "no_teacher": no_teacher,
        "degraded": sum(n for _, n in degraded),
        "degraded_by": {kind: n for kind, n in degraded},
        "cost_usd": float(cost),
        "counterfactual_cost_usd": float(counterfactual),
        "savings_usd": float(counterfactual) - float(cost),
        "latency_ms": {route: {"p50": p50, "p95": p95} for route, _, p50, p95 in by_route},
    }


def task_totals(
    conn: duckdb.DuckDBPyConnection, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Per task (chat/Responses rows; NULL for rows older than the column): requests,
    answered (by the student or the teacher: not refused, not failed), student-served,
    teacher-served, teacher calls, excluded, cost and counterfactual. Busiest first."""
    where, params = _since(since)
    cur = conn.execute(
        "SELECT task, count(*) AS requests, "
        "count(*) FILTER (route IN ('student', 'teacher')) AS answered, "
        "count(*) FILTER (route = 'student') AS student_served, "
        "count(*) FILTER (route = 'teacher') AS teacher_served, "
        "count(*) FILTER (teacher_latency_ms IS NOT NULL) AS teacher_calls, "
        "count(*) FILTER (reason = 'task_excluded') AS excluded_requests, "
        "coalesce(sum(cost_usd), 0) AS cost_usd, "
        "coalesce(sum(counterfactual_cost_usd), 0) AS counterfactual_cost_usd, "
        "max(created_at) AS last_seen "
        f"FROM requests{where}{' AND' if where else ' WHERE'} "
        "route IS DISTINCT FROM 'passthrough' "
        "GROUP BY task ORDER BY requests DESC, task NULLS LAST",
        params,
    )
    return _rows(cur)


def recent(conn: duckdb.DuckDBPyConnection, limit: int = 50) -> list[dict[str, Any]]:
    """The latest requests, newest first, without the large JSON bodies."""
    cur = conn.execute(
        f"SELECT {', '.join(RECENT_COLUMNS)} FROM requests "
        "ORDER BY created_at DESC NULLS LAST, id DESC LIMIT ?",
        [int(limit)],
    )
    return _rows(cur)


def timeseries(
    conn: duckdb.DuckDBPyConnection, since: datetime | None = None, bucket_seconds: int = 60
) -> list[dict[str, Any]]:
    """Per time bucket: requests, teacher calls, cost, counterfactual cost, fallback rate."""
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    where, params = _since(since)
    cur = conn.execute(
        "SELECT CAST(floor(epoch(created_at) / ?) * ? AS BIGINT) AS t, count(*) AS requests, "
        "count(*) FILTER (teacher_latency_ms IS NOT NULL) AS teacher_calls, "
        "count(*) FILTER (route = 'teacher') AS teacher_served, "
        "coalesce(sum(cost_usd), 0) AS cost_usd, "
        "coalesce(sum(counterfactual_cost_usd), 0) AS counterfactual_cost_usd, "
        f"count(*) FILTER ({DECIDED}) AS decided "
        f"FROM requests{where}{' AND' if where else ' WHERE'} created_at IS NOT NULL "
        "GROUP BY 1 ORDER BY 1",
        [bucket_seconds, bucket_seconds, *params],
    )
    out = []
    for t, n, calls, served, cost, counterfactual, decided in cur.fetchall():
        out.append(
            {
                "t": int(t),
                "time": _epoch_iso(int(t)),
                "requests": n,
                "teacher_calls": calls,
                "cost_usd": float(cost),
                "counterfactual_cost_usd": float(counterfactual),
                "fallback_rate": _ratio(served, decided),
            }
        )
    return out


def _epoch_iso(seconds: int) -> str:
    return utc_naive(float(seconds)).isoformat()


def runs(conn: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    """Training runs, newest first, with their config and metrics parsed."""
    cur = conn.execute(
        "SELECT * FROM runs ORDER BY created_at DESC NULLS LAST, id DESC LIMIT ?", [int(limit)]
    )
    rows = _rows(cur)
    for row in rows:
        for key in _RUN_JSON:
            if isinstance(row.get(key), str):
                row[key] = orjson.loads(row[key])
    return rows
