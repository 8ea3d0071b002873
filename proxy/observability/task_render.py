"""The table of `distill stats --by task` (the document of `GET /admin/tasks`)."""

from __future__ import annotations

from typing import Any

from proxy.observability.breakdown import acc, pct


def _serving(task: dict[str, Any]) -> str:
    serving = task.get("serving") or {}
    if serving.get("status") == "excluded":
        return "teacher only (excluded)"
    version = serving.get("version") or "?"
    shared = " (shared)" if serving.get("shared") else ""
    return f"{version}{shared}: {serving.get('status') or 'unknown'}"


def print_tasks(console: Any, data: dict[str, Any], origin: str, top: int = 40) -> None:
    from rich.table import Table

    console.print(f"from {origin}", soft_wrap=True, markup=False, highlight=False)
    tasks = data.get("tasks") or []
    table = Table(title=f"per task ({sum(t['requests'] for t in tasks)} requests)")
    columns = (
        "task",
        "requests",
        "student share",
        "teacher calls",
        "agreement",
        "gold acc.",
        "savings",
        "serving",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "serving") else "right")
    for t in tasks[:top]:
        table.add_row(
            str(t["task"]),
            str(t["requests"]),
            pct(t["student_share"]),
            str(t["teacher_calls"]),
            acc(t["agreement"], t["agreement_n"]),
            acc(t["gold_accuracy"], t["gold_n"]),
            f"${t['savings_usd']:.4f}",
            _serving(t),
        )
    console.print(table)
    hidden = len(tasks) - top
    if hidden > 0:
        console.print(f"(+{hidden} smaller tasks; --json shows all)")
