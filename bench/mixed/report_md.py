"""results.md of a mixed run: the per-task table, overall, the goals, the rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def task_rows(table: dict[str, Any]) -> list[str]:
    lines = [
        "| task | requests | teacher calls | served quality | all-teacher quality | ratio | "
        "cost ratio | version | threshold | proxy's task names |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, b in table["tasks"].items():
        seen = ", ".join(f"{k} ({v})" for k, v in sorted(b["tasks_seen"].items()))
        lines.append(
            f"| {name} | {b['requests']} | {b['teacher_calls']} "
            f"({pct(b['teacher_call_fraction'])}) | {num(b['served'].get('quality'))} | "
            f"{num(b['all_teacher'].get('quality'))} | {pct(b['quality_ratio'])} | "
            f"{pct(b['cost_ratio'])} | {b['student_version'] or '-'} | "
            f"{num(b.get('threshold'), 4)} | {seen} |"
        )
    o = table["overall"]
    lines.append(
        f"| **overall** | {o['requests']} | {o['teacher_calls']} "
        f"({pct(o['teacher_call_fraction'])}) | | | | {pct(o['cost_ratio'])} | | | |"
    )
    return lines


def metric_rows(table: dict[str, Any]) -> list[str]:
    lines = [
        "| task | metric | served | all-teacher | student-served answers |",
        "|---|---|---:|---:|---:|",
    ]
    for name, b in table["tasks"].items():
        student = b.get("student_answers") or {}
        for metric, value in b["served"].items():
            if metric == "quality":
                continue
            lines.append(
                f"| {name} | {metric} | {num(value)} | {num(b['all_teacher'].get(metric))} | "
                f"{num(student.get(metric))} |"
            )
    return lines


def goal_lines(goals: dict[str, Any]) -> list[str]:
    lines = []
    for name, g in goals.items():
        values = {k: v for k, v in g.items() if k not in ("target", "met")}
        lines.append(f"- **{name}** {'met' if g['met'] else 'NOT met'}: {g['target']}. "
                     f"Measured: `{values}`")  # fmt: skip
    return lines


def round_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| round | requests so far | teacher share per task | run | version |",
             "|---:|---:|---|---|---|"]  # fmt: skip
    for r in rows[1:]:
        shares = ", ".join(f"{k} {pct(v)}" for k, v in sorted(r["teacher_call_fraction"].items()))
        lines.append(f"| {r['round']} | {r['requests_so_far']} | {shares} | "
                     f"{r['run_status'] or '-'} | {r['student_version'] or '-'} |")  # fmt: skip
    return lines


def render_markdown(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    s = summary.get("settings") or {}
    quarter = summary["final_quarter"]
    out = [
        "# Mixed-traffic benchmark",
        "",
        f"{summary['requests']} requests ({s.get('shares')}), {num(summary.get('minutes'), 1)} "
        f"minutes, {summary.get('date')}; tasks named by the client: {s.get('name_tasks')}; "
        f"target agreement {s.get('target_agreement')}; seed {s.get('seed')}.",
        "",
        f"## Final quarter (from request {quarter.get('first_request')})",
        "",
        *task_rows(quarter),
        "",
        *metric_rows(quarter),
        "",
        "## Goals (issue 24)",
        "",
        *goal_lines(summary["goals"]),
        "",
        "## All learning traffic",
        "",
        *task_rows(summary["learning"]),
        "",
        "## Rounds",
        "",
        *round_lines(rows),
        "",
        "Quality: accuracy for the intent tasks, slot F1 for SNIPS, token F1 against the "
        "teacher's reply for the free-form control. Costs from usage at the run's prices. "
        "Thresholds as the proxy reports them (`GET /admin/tasks`, else the one of "
        "`GET /admin/calibration`).",
    ]
    plots = summary.get("plots")
    if isinstance(plots, list) and plots:
        out += ["", "## Plots", "", *[f"![{Path(p).stem}]({p})" for p in plots]]
    notes = summary.get("notes") or []
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"
