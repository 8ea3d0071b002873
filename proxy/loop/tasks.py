"""What to train next when the loop is per task (``loop_scope = task``).

One run at a time on a CPU machine, so the loop trains the task where a run is worth the
most: its expected savings per CPU minute,

    requests in the last `WINDOW` x teacher cost per request x share not yet served by
    the student x share the student can reach x share of its teacher answers the student
    has not learnt from yet / expected minutes of a run of that task,

the reachable share being the held-out agreement with the teacher of the task's last judged
run (its better of candidate and incumbent; all of it before a first run, at least
`MIN_REACHABLE`), so a task no student can match (free-form text) stops taking the CPU
after a run or two; the last share is what a run adds: all of it for a first run, less for
each refit of a task that already learnt from most of its rows (diminishing returns, so a
cheap refit of a well-fed task does not starve a task whose first runs are still ahead). The
minutes are the mean of the task's previous runs (else of all runs, else
`DEFAULT_RUN_MINUTES`). The rows trigger considers only tasks with `train_every_rows` new
teacher answers since their last run (`train_min_rows` for a first run); a manual or
scheduled run without a task takes the best task with any teacher answers. Excluded tasks
are never trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from proxy.loop.store import utcnow
from proxy.tasks.config import TaskOverride

WINDOW = timedelta(hours=24)
DEFAULT_RUN_MINUTES = 30.0
"""A first run's expected length when no run finished yet (a LoRA run on 2 CPU cores)."""
UNPRICED_COST = 1.0
"""Teacher cost per request where no prices are configured: volume and share decide."""
MIN_REACHABLE = 0.05
"""The least reachable share: a task its last run did not match still gets a run now and
then, as its rows grow."""
_RAN = ("promoted", "rejected")


@dataclass(frozen=True)
class TaskTraffic:
    """One task's traffic, as the choice needs it."""

    task: str
    recent: int
    """Requests answered (student or teacher) in the window."""
    student_served: int
    """Of those, served by the student."""
    cost_per_request: float | None
    """Mean teacher-only cost of a request in the window (None: no prices)."""
    teacher_rows: int
    """Teacher answers ever logged (training material)."""
    new_teacher_rows: int
    """Teacher answers since the task's last run (all of them before its first)."""
    has_run: bool
    run_minutes: float | None
    """Mean minutes of its runs that finished training (None: none yet)."""
    last_agreement: float | None = None
    """Held-out agreement with the teacher of its last judged run, the better of candidate
    and incumbent (None: no run judged yet)."""

    @property
    def unserved_share(self) -> float:
        return 1.0 - self.student_served / self.recent if self.recent else 1.0

    @property
    def reachable_share(self) -> float:
        """Share of its traffic a student may come to serve, as far as its runs tell."""
        if self.last_agreement is None:
            return 1.0
        return min(1.0, max(MIN_REACHABLE, self.last_agreement))

    @property
    def new_share(self) -> float:
        """Share of the teacher answers a run would learn from for the first time."""
        if not self.has_run or self.teacher_rows <= 0:
            return 1.0
        return min(1.0, self.new_teacher_rows / self.teacher_rows)


def savings_per_minute(t: TaskTraffic, default_minutes: float) -> float:
    cost = t.cost_per_request if t.cost_per_request else UNPRICED_COST
    minutes = t.run_minutes or default_minutes
    share = t.unserved_share * t.reachable_share * t.new_share
    return t.recent * cost * share / max(minutes, 1e-3)


def choose(
    traffic: list[TaskTraffic],
    overrides: Mapping[str, TaskOverride],
    *,
    every: int | None,
    min_rows: int,
) -> TaskTraffic | None:
    """The task to train: with `every` (the rows trigger) only tasks with that many new
    teacher answers (a first run: at least `min_rows`); else any with teacher answers."""

    def eligible(t: TaskTraffic) -> bool:
        override = overrides.get(t.task)
        if override is not None and override.exclude:
            return False
        if every is None:
            return t.teacher_rows > 0
        return t.new_teacher_rows >= (every if t.has_run else max(every, min_rows))

    known = [t.run_minutes for t in traffic if t.run_minutes]
    default = sum(known) / len(known) if known else DEFAULT_RUN_MINUTES
    candidates = [t for t in traffic if eligible(t)]
    if not candidates:
        return None
    # Ties (no prices, no traffic in the window) go to the task with the most new rows.
    return max(candidates, key=lambda t: (savings_per_minute(t, default), t.new_teacher_rows))


_TRAFFIC_SQL = """
SELECT r.task,
  sum(CASE WHEN r.created_at >= ? AND r.route IN ('student', 'teacher') THEN 1 ELSE 0 END),
  sum(CASE WHEN r.created_at >= ? AND r.route = 'student' THEN 1 ELSE 0 END),
  avg(CASE WHEN r.created_at >= ? THEN r.counterfactual_cost_usd END),
  sum(CASE WHEN r.teacher_text IS NOT NULL AND r.store IS NOT FALSE THEN 1 ELSE 0 END),
  sum(CASE WHEN r.teacher_text IS NOT NULL AND r.store IS NOT FALSE
      AND (l.last IS NULL OR r.created_at >= l.last) THEN 1 ELSE 0 END),
  max(l.last)
FROM requests r
LEFT JOIN (SELECT task, max(created_at) AS last FROM runs
           WHERE status <> 'skipped' AND task IS NOT NULL GROUP BY task) l ON l.task = r.task
WHERE r.task IS NOT NULL
GROUP BY r.task
"""
_JUDGED_RUNS_SQL = (
    "SELECT task, started_at, finished_at, metrics_json FROM runs WHERE task IS NOT NULL "
    "AND status IN ('promoted', 'rejected') AND started_at IS NOT NULL "
    "AND finished_at IS NOT NULL ORDER BY created_at DESC LIMIT 200"
)


def _run_minutes(rows: list[tuple[Any, ...]]) -> dict[str, float]:
    spans: dict[str, list[float]] = {}
    for task, started, finished, _ in rows:
        if isinstance(started, datetime) and isinstance(finished, datetime):
            spans.setdefault(str(task), []).append((finished - started).total_seconds() / 60)
    return {task: sum(v) / len(v) for task, v in spans.items()}


def best_agreement(metrics: Any) -> float | None:
    """The better held-out agreement of a judged run's candidate and incumbent (its
    `metrics_json`: a dict, or its JSON text on DuckDB)."""
    if isinstance(metrics, str | bytes):
        try:
            metrics = orjson.loads(metrics)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(metrics, dict):
        return None
    found = [
        float(side["agreement"])
        for key in ("candidate", "incumbent")
        if isinstance(side := metrics.get(key), dict)
        and isinstance(side.get("agreement"), int | float)
    ]
    return max(found) if found else None


def _last_agreements(rows: list[tuple[Any, ...]]) -> dict[str, float]:
    """Per task, the agreement of its newest judged run (rows come newest first)."""
    out: dict[str, float] = {}
    for task, _, _, metrics in rows:
        if str(task) not in out and (agreement := best_agreement(metrics)) is not None:
            out[str(task)] = agreement
    return out


def task_traffic(cur: Any, now: datetime | None = None) -> list[TaskTraffic]:
    """Every task's traffic from the log (a DuckDB connection or a translating cursor)."""
    since = (now or utcnow()) - WINDOW
    rows = cur.execute(_TRAFFIC_SQL, [since, since, since]).fetchall()
    runs = cur.execute(_JUDGED_RUNS_SQL).fetchall()
    minutes, agreements = _run_minutes(runs), _last_agreements(runs)
    return [
        TaskTraffic(
            task=str(task),
            recent=int(recent or 0),
            student_served=int(student or 0),
            cost_per_request=float(cost) if cost else None,
            teacher_rows=int(teacher or 0),
            new_teacher_rows=int(new or 0),
            has_run=last is not None,
            run_minutes=minutes.get(str(task)),
            last_agreement=agreements.get(str(task)),
        )  # fmt: skip
        for task, recent, student, cost, teacher, new, last in rows
    ]
