"""Dashboard and CLI queries the log store's `queries` module does not have.

Same conventions as `proxy.logstore.queries`: each function takes a DuckDB
connection/cursor and returns JSON-ready values (timestamps as naive-UTC ISO text).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import duckdb
import numpy as np

from proxy.logstore.queries import RECENT_COLUMNS
from proxy.logstore.rows import utc_naive
from trainer.agreement import agreement

# The dashboard's log view: the recent-rows columns less two it does not show.
_LOG_COLUMNS = tuple(c for c in RECENT_COLUMNS if c not in ("finished_at", "scorer"))
_MAX_PAIRS = 5000
_MAX_SCORES = 20000
_HISTOGRAM_BINS = 30


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _where(since: datetime | None, *extra: str) -> tuple[str, list[Any]]:
    clauses = list(extra)
    params: list[Any] = []
    if since is not None:
        clauses.insert(0, "created_at >= ?")
        params.append(utc_naive(since))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    return [{n: _iso(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def request_span(
    conn: duckdb.DuckDBPyConnection, since: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """First and last `created_at` in the window."""
    where, params = _where(since)
    row = conn.execute(
        f"SELECT min(created_at), max(created_at) FROM requests{where}", params
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def latency_by_route(
    conn: duckdb.DuckDBPyConnection, since: datetime | None = None
) -> list[dict[str, Any]]:
    """p50/p90/p95/p99 of total latency and p50/p95 of time to first byte, per route."""
    where, params = _where(since, "total_latency_ms IS NOT NULL")
    cur = conn.execute(
        "SELECT coalesce(route, 'unknown') AS route, count(*) AS requests, "
        "quantile_cont(total_latency_ms, 0.5) AS p50_ms, "
        "quantile_cont(total_latency_ms, 0.9) AS p90_ms, "
        "quantile_cont(total_latency_ms, 0.95) AS p95_ms, "
        "quantile_cont(total_latency_ms, 0.99) AS p99_ms, "
        "quantile_cont(ttfb_ms, 0.5) AS ttfb_p50_ms, quantile_cont(ttfb_ms, 0.95) AS ttfb_p95_ms "
        f"FROM requests{where} GROUP BY 1 ORDER BY 1",
        params,
    )
    return _dicts(cur)


def confidence_histogram(
    conn: duckdb.DuckDBPyConnection, since: datetime | None = None, bins: int = _HISTOGRAM_BINS
) -> dict[str, Any]:
    """Scores of the newest scored answers, binned, split by the route that served them."""
    where, params = _where(since, "confidence IS NOT NULL", "isfinite(confidence)")
    rows = conn.execute(
        f"SELECT confidence, route = 'student' FROM requests{where} "
        "ORDER BY created_at DESC LIMIT ?",
        [*params, _MAX_SCORES],
    ).fetchall()
    scorer_where, scorer_params = _where(since, "scorer IS NOT NULL")
    scorer_row = conn.execute(
        f"SELECT scorer FROM requests{scorer_where} ORDER BY created_at DESC LIMIT 1",
        scorer_params,
    ).fetchone()
    if not rows:
        return {"edges": [], "served": [], "fallback": [], "scorer": None, "count": 0}
    scores = np.array([float(r[0]) for r in rows])
    served = np.array([bool(r[1]) for r in rows])
    low, high = float(scores.min()), float(scores.max())
    if math.isclose(low, high):
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    return {
        "edges": [float(e) for e in edges],
        "served": [int(n) for n in np.histogram(scores[served], edges)[0]],
        "fallback": [int(n) for n in np.histogram(scores[~served], edges)[0]],
        "scorer": scorer_row[0] if scorer_row else None,
        "count": len(rows),
    }


def agreement_series(
    conn: duckdb.DuckDBPyConnection, since: datetime | None, bucket_seconds: int
) -> list[dict[str, Any]]:
    """Agreement of the student's answers with the teacher's per bucket.

    ``shadow``: pairs where the student served and the teacher answered in the background
    (an unbiased sample of served answers); ``all``: every pair, fallbacks included.
    """
    where, params = _where(since, "student_text IS NOT NULL", "teacher_text IS NOT NULL")
    rows = conn.execute(
        "SELECT CAST(floor(epoch(created_at) / ?) * ? AS BIGINT), student_text, teacher_text, "
        f"coalesce(shadow, false) FROM requests{where} ORDER BY created_at DESC LIMIT ?",
        [bucket_seconds, bucket_seconds, *params, _MAX_PAIRS],
    ).fetchall()
    buckets: dict[int, list[list[float]]] = {}
    for t, student, teacher, shadow in rows:
        score, _ = agreement(student, teacher)
        shadow_scores, all_scores = buckets.setdefault(int(t), [[], []])
        all_scores.append(score)
        if shadow:
            shadow_scores.append(score)
    out = []
    for t in sorted(buckets):
        shadow_scores, all_scores = buckets[t]
        out.append(
            {
                "t": t,
                "shadow_agreement": _mean(shadow_scores),
                "shadow_pairs": len(shadow_scores),
                "all_agreement": _mean(all_scores),
                "all_pairs": len(all_scores),
            }
        )
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def student_versions(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Versions from the `student_versions` table plus any version seen only in the log
    (the base model has no row), each with the moment it started serving."""
    table = conn.execute(
        "SELECT name, run_id, created_at, activated_at, coalesce(active, false) AS active, "
        "threshold FROM student_versions ORDER BY activated_at NULLS LAST, created_at"
    )
    versions = {row["name"]: row for row in _dicts(table)}
    seen = conn.execute(
        "SELECT student_version, min(created_at), max(created_at) FROM requests "
        "WHERE student_version IS NOT NULL GROUP BY 1"
    ).fetchall()
    for name, first, last in seen:
        entry = versions.setdefault(
            name,
            {
                "name": name,
                "run_id": None,
                "created_at": None,
                "activated_at": None,
                "active": None,
                "threshold": None,
            },
        )
        entry["first_seen"] = _iso(first)
        entry["last_seen"] = _iso(last)
    return sorted(
        versions.values(), key=lambda v: v.get("activated_at") or v.get("first_seen") or ""
    )


def logs_after(
    conn: duckdb.DuckDBPyConnection, after: tuple[str, str] | None, limit: int = 100
) -> list[dict[str, Any]]:
    """Requests logged after the cursor ``(created_at ISO, id)``, oldest first (`logs --follow`)."""
    columns = ", ".join(_LOG_COLUMNS)
    if after is None:
        cur = conn.execute(
            f"SELECT * FROM (SELECT {columns} FROM requests ORDER BY created_at DESC, id DESC "
            "LIMIT ?) ORDER BY created_at, id",
            [int(limit)],
        )
        return _dicts(cur)
    cur = conn.execute(
        f"SELECT {columns} FROM requests WHERE created_at > ? OR (created_at = ? AND id > ?) "
        "ORDER BY created_at, id LIMIT ?",
        [utc_naive(after[0]), utc_naive(after[0]), after[1], int(limit)],
    )
    return _dicts(cur)
