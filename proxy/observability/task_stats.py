"""Per task: what `GET /admin/tasks` and `distill stats --by task` show.

For each task (busiest first; configured tasks without traffic too): requests, the share
of its answered requests (not refused, not failed) the student served, teacher calls
(served, shadow or failed), the student's agreement with the teacher where a row has both
answers, its accuracy on gold rows (users' feedback), cost, teacher-only cost and savings,
the task's overrides, and the serving version with its calibration status.

With ``loop_scope = task`` a task with a slot of its own (its own threshold, and once
trained its own versions) shows that slot, ``shared: false``; a task without one yet, or
every task with ``loop_scope = all``, is served by the version for all traffic, marked
``shared`` (an excluded task by the teacher alone). Rows logged before the task column
existed are grouped as ``(none)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb

from proxy.logstore import queries
from proxy.observability.breakdown import NO_TAG, breakdown
from proxy.tasks.config import TaskOverride

NO_TASK = NO_TAG
_QUALITY = (
    "agreement",
    "agreement_n",
    "gold_accuracy",
    "gold_n",
    "teacher_gold_accuracy",
    "teacher_gold_n",
)


def _entry(
    name: str,
    totals: Mapping[str, Any] | None,
    quality: Mapping[str, Any] | None,
    override: TaskOverride | None,
) -> dict[str, Any]:
    t = dict(totals or {})
    answered = int(t.get("answered") or 0)
    student = int(t.get("student_served") or 0)
    cost = float(t.get("cost_usd") or 0.0)
    counterfactual = float(t.get("counterfactual_cost_usd") or 0.0)
    entry: dict[str, Any] = {
        "task": name,
        "requests": int(t.get("requests") or 0),
        "answered": answered,
        "student_served": student,
        "student_share": student / answered if answered else None,
        "teacher_served": int(t.get("teacher_served") or 0),
        "teacher_calls": int(t.get("teacher_calls") or 0),
        "excluded_requests": int(t.get("excluded_requests") or 0),
        "cost_usd": cost,
        "counterfactual_cost_usd": counterfactual,
        "savings_usd": counterfactual - cost,
        "last_seen": t.get("last_seen"),
        "excluded": bool(override and override.exclude),
        "config": override.model_dump(mode="json") if override is not None else None,
    }
    entry.update({k: (quality or {}).get(k, 0 if k.endswith("_n") else None) for k in _QUALITY})
    return entry


def task_report(
    conn: duckdb.DuckDBPyConnection,
    since: datetime | None,
    overrides: Mapping[str, TaskOverride] | None = None,
) -> dict[str, Any]:
    """The per-task table from the log (no serving state: see `attach_serving`)."""
    overrides = overrides or {}
    totals = {row["task"] or NO_TASK: row for row in queries.task_totals(conn, since)}
    quality = {g["name"]: g for g in breakdown(conn, "task", since)["groups"]}
    names = list(totals) + [n for n in overrides if n not in totals]
    tasks = [_entry(n, totals.get(n), quality.get(n), overrides.get(n)) for n in names]
    return {"since": since.isoformat() if since else None, "tasks": tasks}


def serving_state(
    version: str | None,
    model: str | None,
    threshold: float | None,
    calibration: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The one serving version as the loop knows it (shared by every task for now)."""
    calibration = calibration or {}
    return {
        "version": version,
        "student_model": model,
        "threshold": threshold,
        "calibration": calibration.get("status") or calibration.get("mode"),
        "calibration_summary": calibration.get("summary"),
        "target_agreement": calibration.get("target_agreement"),
    }


def attach_serving(
    report: dict[str, Any],
    serving: Mapping[str, Any],
    by_task: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Adds the serving version: to the report, and to each task (its own slot from
    `by_task`, else ``shared``; the teacher alone for an excluded task), with the task's
    own quality target if it has one."""
    report["serving"] = dict(serving)
    for task in report["tasks"]:
        own = (by_task or {}).get(task["task"])
        source = own or serving
        target = (task["config"] or {}).get("quality_target") or source.get("target_agreement")
        if task["excluded"]:
            task["serving"] = {"route": "teacher", "version": None, "status": "excluded"}
            continue
        task["serving"] = {
            "route": "cascade",
            "version": source.get("version"),
            "shared": own is None,
            "threshold": source.get("threshold"),
            "status": source.get("calibration"),
            "quality_target": target,
        }
        if own is not None:
            task["serving"].update(
                own_version=bool(own.get("own")),
                too_little_traffic=bool(own.get("too_little_traffic")),
                calibration_summary=own.get("calibration_summary"),
            )
    return report


def serving_from_log(conn: duckdb.DuckDBPyConnection, calibration_mode: bool) -> dict[str, Any]:
    """`serving_state` without a server: the active version's row (the CLI on the file)."""
    rows = conn.execute(
        "SELECT name, threshold FROM student_versions WHERE active "
        "ORDER BY activated_at DESC NULLS LAST LIMIT 1"
    ).fetchall()
    name, threshold = rows[0] if rows else ("base", None)
    return serving_state(str(name), None, threshold, calibration_guess(calibration_mode, threshold))


def calibration_guess(calibration_mode: bool, threshold: float | None) -> dict[str, Any]:
    """The calibration status where no calibrator says it (no loop, or no server)."""
    if not calibration_mode:
        return {"mode": "static"}
    return {"status": "calibrated" if threshold is not None else "not_calibrated_yet"}
