"""The documents behind `GET /admin/stats`, `GET /admin/logs` and the dashboard.

Each builder takes a DuckDB cursor, so the server (through `LogWriter.read`) and the
CLI on a stopped server (a read-only connection to the file) produce the same JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from proxy.logstore import queries
from proxy.observability import queries_ext
from proxy.observability.breakdown import feedback_overview
from proxy.observability.window import bucket_for


def _version_from_log(conn: duckdb.DuckDBPyConnection) -> str | None:
    row = conn.execute(
        "SELECT name FROM student_versions WHERE active ORDER BY activated_at DESC LIMIT 1"
    ).fetchone()
    if row:
        return str(row[0])
    row = conn.execute(
        "SELECT student_version FROM requests WHERE student_version IS NOT NULL "
        "ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    return str(row[0]) if row else None


def stats_report(
    conn: duckdb.DuckDBPyConnection, since: datetime | None, runs_limit: int = 5
) -> dict[str, Any]:
    """What `distill stats` prints: totals, route mix, cost, latency, version, last runs."""
    summary = queries.summary(conn, since)
    counterfactual = summary["counterfactual_cost_usd"]
    summary["savings_pct"] = (
        100.0 * summary["savings_usd"] / counterfactual if counterfactual else None
    )
    return {
        "generated_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "summary": summary,
        "latency": queries_ext.latency_by_route(conn, since),
        "student_version": _version_from_log(conn),
        "runs": queries.runs(conn, limit=runs_limit),
        "feedback": feedback_overview(conn, since),
    }


def note_teacher(report: dict[str, Any], configured: bool | None) -> dict[str, Any]:
    """Records whether a teacher is configured; without one there is no fallback rate and
    no saving to report (answers the teacher would have given were served degraded), so
    those numbers become None and `summary.degraded` is what tells the story.

    `configured` None (the CLI reading the file: its environment need not be the server's)
    infers it from the log: answers served for want of a teacher, and no teacher call.
    """
    summary = report["summary"]
    if configured is None:
        configured = not (summary.get("no_teacher") and not summary.get("teacher_calls"))
    report["teacher_configured"] = configured
    if not configured:
        summary.update(fallback_rate=None, savings_usd=None, savings_pct=None)
        for bucket in report.get("timeseries") or []:
            bucket["fallback_rate"] = None
    return report


def dashboard_report(conn: duckdb.DuckDBPyConnection, since: datetime | None) -> dict[str, Any]:
    """Everything the dashboard draws, for one time window."""
    first, last = queries_ext.request_span(conn, since)
    bucket = bucket_for(since, first=first, last=last)
    report = stats_report(conn, since, runs_limit=20)
    report.update(
        bucket_seconds=bucket,
        timeseries=queries.timeseries(conn, since, bucket),
        agreement=queries_ext.agreement_series(conn, since, bucket),
        confidence=queries_ext.confidence_histogram(conn, since),
        versions=queries_ext.student_versions(conn),
    )
    return report


def logs_report(
    conn: duckdb.DuckDBPyConnection, limit: int, after: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    return queries_ext.logs_after(conn, after, limit)
