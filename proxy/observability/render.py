"""Rich tables for `distill stats` and `distill logs`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from proxy.observability.breakdown import feedback_lines

# Columns of `distill logs` (key in the row, header, width cap).
_LOG_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("created_at", "time (UTC)", 19),
    ("id", "request", 36),
    ("route", "route", 7),
    ("reason", "reason", 18),
    ("confidence", "conf", 7),
    ("status_code", "status", 6),
    ("total_latency_ms", "ms", 8),
    ("cost_usd", "cost $", 10),
    ("student_version", "version", 16),
    ("error", "error", 40),
)


# What each `route` of the request log means (also in the README).
ROUTES = {
    "student": "the student's answer was served",
    "teacher": "the teacher's answer was served",
    "passthrough": "an endpoint relayed to the teacher as is (embeddings, files, ...)",
    "none": "refused, or failed before any upstream answered",
}
NO_TEACHER = "no teacher configured"


def usd(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.6f}"


def _pct(value: float | None, scale: float = 100.0) -> str:
    return "–" if value is None else f"{value * scale:.1f}%"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _share(n: int, total: int) -> str:
    return f"{n:,} ({_pct(n / total if total else None)})"


def _overview(report: dict[str, Any]) -> Table:
    s = report["summary"]
    table = Table(
        title=f"distill stats since {s.get('since') or 'the start'} (UTC)",
        show_header=False,
        title_justify="left",
    )
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("requests", f"{s['requests']:,}")
    for route, n in sorted(s["routes"].items()):
        meaning = ROUTES.get(route)
        label = f"  route {route}" + (f" ({meaning})" if meaning else "")
        table.add_row(label, _share(n, s["requests"]))
    no_teacher = report.get("teacher_configured") is False
    if no_teacher:
        table.add_row("teacher", f"[yellow]{NO_TEACHER}[/yellow]")
    table.add_row("fallback rate", f"– ({NO_TEACHER})" if no_teacher else _pct(s["fallback_rate"]))
    table.add_row("degraded answers", _degraded(s))
    table.add_row("teacher calls", f"{s['teacher_calls']:,}")
    table.add_row("errors (HTTP >= 400)", f"{s['errors']:,}")
    table.add_row("spent", usd(s["cost_usd"]))
    table.add_row("teacher-only would cost", usd(s["counterfactual_cost_usd"]))
    table.add_row("saved", f"– ({NO_TEACHER})" if no_teacher else _saved(s))
    version = report.get("student_version") or "–"
    if report.get("threshold") is not None:
        version += f" (threshold {report['threshold']:.3f})"
    table.add_row("student version", version)
    calibration = report.get("calibration")
    if calibration:
        table.add_row("calibration", calibration.get("summary") or "–")
        if calibration.get("guarantee"):
            table.add_row("  guarantee", calibration["guarantee"])
    log = report.get("log")
    if log:
        table.add_row("log queue / dropped", f"{log['queue_depth']} / {log['dropped']}")
    return table


def _degraded(summary: dict[str, Any]) -> str:
    n = int(summary.get("degraded") or 0)
    kinds = ", ".join(f"{k} {v:,}" for k, v in (summary.get("degraded_by") or {}).items())
    return _share(n, summary["requests"]) + (f": {kinds}" if kinds else "")


def _saved(summary: dict[str, Any]) -> str:
    pct = summary.get("savings_pct")
    return f"[green]{usd(summary['savings_usd'])}[/green]" + (
        "" if pct is None else f" ({pct:.1f}%)"
    )


def _latency(report: dict[str, Any]) -> Table:
    table = Table(title="latency by route (ms)", title_justify="left")
    for header in ("route", "requests", "p50", "p95", "p99", "ttfb p50"):
        table.add_column(header, justify="left" if header == "route" else "right")
    for row in report.get("latency") or []:
        table.add_row(
            row["route"],
            f"{row['requests']:,}",
            _ms(row["p50_ms"]),
            _ms(row["p95_ms"]),
            _ms(row["p99_ms"]),
            _ms(row.get("ttfb_p50_ms")),
        )
    return table


def runs_table(
    runs: list[dict[str, Any]],
    title: str = "last runs",
    detail_header: str = "reason",
    detail: Callable[[dict[str, Any]], str] = lambda run: str(run.get("reason") or ""),
) -> Table:
    """One row per distillation run; `distill stats` and `distill runs` both print it."""
    table = Table(title=title, title_justify="left")
    for header in ("run", "status", "trigger", "created", "finished", detail_header):
        table.add_column(header)
    for run in runs:
        table.add_row(
            str(run.get("id")),
            str(run.get("status") or ""),
            str(run.get("trigger") or ""),
            str(run.get("created_at") or "")[:19],
            str(run.get("finished_at") or "")[:19],
            detail(run),
        )
    if not runs:
        table.add_row("(no runs yet)", "", "", "", "", "")
    return table


def print_stats(console: Console, report: dict[str, Any], origin: str) -> None:
    console.print(f"from {origin}", soft_wrap=True, markup=False, highlight=False)
    console.print(_overview(report))
    for line in feedback_lines(report):
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    console.print(_latency(report))
    console.print(runs_table(report.get("runs") or []))


def _cell(row: dict[str, Any], key: str, width: int) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if key == "cost_usd":
        return f"{value:.6f}"
    if key in ("confidence",):
        return f"{value:.3f}"
    if key == "total_latency_ms":
        return f"{value:,.0f}"
    return str(value)[:width]


def logs_table(rows: list[dict[str, Any]], title: str | None, header: bool = True) -> Table:
    table = Table(title=title, title_justify="left", show_header=header)
    for _, name, width in _LOG_COLUMNS:
        table.add_column(name, max_width=width, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row, key, width) for key, _, width in _LOG_COLUMNS))
    return table
