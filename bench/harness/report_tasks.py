"""The report every benchmark shares: per task and overall, the proxy's traffic against the
all-teacher baseline on the same requests.

Per task: requests, teacher calls, what the student served, the task's own quality
metrics served vs all-teacher (`Task.quality`), cost from usage at the run's prices, the
student version that served last, the threshold the proxy reports for it, and which task
names the proxy itself gave the requests (did it find the task?).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.harness.stats import (
    Prices,
    all_teacher_cost,
    baseline_costs,
    student_cost,
    teacher_cost_from_usage,
)
from bench.harness.task import Record, Task, share


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _last_version(records: Iterable[Record]) -> str | None:
    versions = [r.get("student_version") for r in records if r.get("student_version")]
    return str(versions[-1]) if versions else None


def routing(
    records: Sequence[Record], baseline: dict[int, float], prices: Prices
) -> dict[str, Any]:
    """Routing and cost of a set of requests (any tasks)."""
    n = len(records)
    teacher_calls = sum(1 for r in records if r.get("route") == "teacher")
    cost = teacher_cost_from_usage(records, prices) + student_cost(records, prices)
    counterfactual = all_teacher_cost(records, baseline, prices)
    return {
        "requests": n,
        "teacher_calls": teacher_calls,
        "teacher_call_fraction": share(teacher_calls, n),
        "student_served": sum(1 for r in records if r.get("route") == "student"),
        "errors": sum(1 for r in records if r.get("error")),
        "reasons": dict(Counter(str(r["reason"]) for r in records if r.get("reason"))),
        "cost_usd": cost,
        "all_teacher_cost_usd": counterfactual,
        "cost_ratio": _ratio(cost, counterfactual),
    }


def task_block(
    task: Task,
    records: Sequence[Record],
    teacher_by_index: Mapping[int, Record],
    baseline: dict[int, float],
    prices: Prices,
) -> dict[str, Any]:
    """One task's row: routing and cost, and its quality served vs all-teacher."""
    same = [
        teacher_by_index[int(r["index"])] for r in records if int(r["index"]) in teacher_by_index
    ]
    served, teacher = task.quality(records), task.quality(same)
    student = [r for r in records if r.get("route") == "student"]
    return {
        **routing(records, baseline, prices),
        "served": served,
        "all_teacher": teacher,
        "quality_ratio": _ratio(served.get("quality"), teacher.get("quality")),
        "student_answers": task.quality(student) if student else None,
        "student_version": _last_version(records),
        "tasks_seen": dict(Counter(str(r.get("task_seen")) for r in records)),
    }


def task_table(
    tasks: Mapping[str, Task],
    records: Sequence[Record],
    teacher_records: Sequence[Record],
    prices: Prices,
) -> dict[str, Any]:
    """Per task (in `tasks` order) and overall, for `records` against the baseline."""
    baseline = baseline_costs(teacher_records, prices)
    teacher_by_index = {int(r["index"]): r for r in teacher_records}
    out: dict[str, Any] = {"tasks": {}, "overall": routing(records, baseline, prices)}
    for name, task in tasks.items():
        mine = [r for r in records if r.get("task") == name]
        if mine:
            out["tasks"][name] = task_block(task, mine, teacher_by_index, baseline, prices)
    return out


def _threshold_of(entry: Mapping[str, Any]) -> float | None:
    serving = entry.get("serving")
    if isinstance(serving, Mapping) and "threshold" in serving:
        entry = serving  # GET /admin/tasks: the task's serving slot
    value = entry.get("threshold")
    if value is None:
        value = (entry.get("calibration") or {}).get("threshold")
    return float(value) if isinstance(value, int | float) else None


def proxy_thresholds(
    admin_tasks: Any, calibration: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """The proxy's threshold per task of its own: from ``GET /admin/tasks`` where the proxy
    has it (a list of tasks, or a mapping by name), else the one threshold of
    ``GET /admin/calibration`` for every task (``"*"``)."""
    items: list[Mapping[str, Any]] = []
    if isinstance(admin_tasks, Mapping):
        found = admin_tasks.get("tasks", admin_tasks)
        if isinstance(found, Mapping):
            items = [{"name": k, **v} for k, v in found.items() if isinstance(v, Mapping)]
        elif isinstance(found, list):
            items = [t for t in found if isinstance(t, Mapping)]
    elif isinstance(admin_tasks, list):
        items = [t for t in admin_tasks if isinstance(t, Mapping)]
    out = {
        str(t.get("name", t.get("task"))): {
            "threshold": _threshold_of(t),
            "version": t.get("version", t.get("student_version"))
            or (t.get("serving") or {}).get("version"),
            "source": "GET /admin/tasks",
        }
        for t in items
    }
    if out or not calibration:
        return out
    for version, entry in (calibration.get("versions") or {}).items():
        if isinstance(entry, Mapping) and entry.get("role") == "current":
            source = "GET /admin/calibration (one threshold for all traffic)"
            return {"*": {"threshold": _threshold_of(entry), "version": version, "source": source}}
    return {}


def attach_thresholds(table: dict[str, Any], thresholds: Mapping[str, Mapping[str, Any]]) -> None:
    """Each task's threshold: the proxy's entry for the task name it gave most of the
    task's requests (or the one global entry)."""
    for block in table["tasks"].values():
        seen = Counter({k: v for k, v in block["tasks_seen"].items() if k != "None"})
        name = seen.most_common(1)[0][0] if seen else None
        entry = thresholds.get(name or "", thresholds.get("*"))
        block["threshold"] = entry.get("threshold") if entry else None
        block["threshold_source"] = entry.get("source") if entry else None
