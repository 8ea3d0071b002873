"""The benchmark's goals (issue 21: a student that learns like a classifier), checked on a
report's summary and rounds. Every goal carries its target in words, the measured values
and `met`; `report_md` prints them."""

from __future__ import annotations

from typing import Any

from bench.harness.stats import percentile

ALONE_BY_1500 = 0.82  # student alone on validation by 1,500 teacher answers
ALONE_AT_END = 0.85
CASCADE_GOAL = 0.98  # served accuracy: share of the all-teacher accuracy (final third)
TEACHER_SHARE_GOAL = 0.30  # final third
COST_GOAL = 0.35  # final third, vs all-teacher
SERVES_BY = 600  # the first student-served request, at the latest
IDLE_P50_MS, IDLE_P95_MS = 300.0, 600.0
SERVED_P50_MS = 500.0  # student route, final third
FALLBACK_EXTRA_MS = 150.0  # teacher route p50 (final third) over a direct teacher call's p50
MINUTES_BUDGET = 90.0


def _teacher_answers(row: dict[str, Any]) -> int | None:
    cumulative = row.get("cumulative") or {}
    calls = cumulative.get("teacher_calls")
    return int(calls) if isinstance(calls, int | float) else None


def student_alone(summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy alone after the run that followed <= 1,500 teacher answers, and at the end."""
    by_1500 = None
    for row in rows[1:]:
        answers = _teacher_answers(row)
        if answers is not None and answers <= 1500 and row["student_only_accuracy"] is not None:
            by_1500 = row["student_only_accuracy"]  # measured after this segment's run
    final = summary.get("student_only_accuracy")
    return {
        "target": f">= {ALONE_BY_1500:.0%} alone by 1,500 teacher answers, "
        f">= {ALONE_AT_END:.0%} at the end",
        "by_1500": by_1500,
        "final": final,
        "ratio": final / summary["teacher_accuracy"]
        if final is not None and summary.get("teacher_accuracy")
        else None,
        "runs": sum(1 for r in rows if r.get("run_status")),
        "reached_at_requests": next(
            (
                r["requests_so_far"]
                for r in rows[1:]
                if (r["student_only_accuracy"] or 0) >= ALONE_BY_1500
            ),
            None,
        ),  # fmt: skip
        "met": by_1500 is not None
        and by_1500 >= ALONE_BY_1500
        and final is not None
        and final >= ALONE_AT_END,
    }


def cascade(summary: dict[str, Any]) -> dict[str, Any]:
    third = summary.get("final_third") or {}
    teacher_acc = summary.get("teacher_accuracy") or 0.0
    served, fraction = third.get("served_accuracy"), third.get("fallback_rate")
    cost = third.get("cost_ratio")
    ratio = served / teacher_acc if served is not None and teacher_acc else None
    return {
        "target": f"final third: >= {CASCADE_GOAL:.0%} of all-teacher accuracy, <= "
        f"{TEACHER_SHARE_GOAL:.0%} teacher calls, cost <= {COST_GOAL:.0%} of all-teacher",
        "ratio": ratio,
        "teacher_call_fraction": fraction,
        "cost_ratio": cost,
        "met": ratio is not None
        and fraction is not None
        and cost is not None
        and ratio >= CASCADE_GOAL
        and fraction <= TEACHER_SHARE_GOAL
        and cost <= COST_GOAL,
    }


def serves_from(raw: dict[str, Any]) -> dict[str, Any]:
    """The position in the learning traffic of the first request the student served."""
    records = [r for seg in raw.get("segments") or [] for r in seg["records"]]
    first = next((i + 1 for i, r in enumerate(records) if r.get("route") == "student"), None)
    return {
        "target": f"the student serves from before request {SERVES_BY}",
        "first_student_request": first,
        "met": first is not None and first <= SERVES_BY,
    }


def latency(raw: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    learning = summary.get("learning") or []
    idle = [r for r in learning if r.get("student_p50_ms_idle") is not None]
    last = idle[-1] if idle else {}
    third = (summary.get("final_third") or {}).get("latency_ms") or {}
    served = (third.get("student") or {}).get("p50")
    fallback = (third.get("teacher") or {}).get("p50")
    direct = percentile([float(r["latency_ms"]) for r in raw["teacher_baseline"]["records"]], 50)
    extra = fallback - direct if fallback is not None and direct is not None else None
    p50, p95 = last.get("student_p50_ms_idle"), last.get("student_p95_ms_idle")
    return {
        "target": f"idle p50 <= {IDLE_P50_MS:.0f} ms and p95 <= {IDLE_P95_MS:.0f} ms (last "
        f"probes); served p50 <= {SERVED_P50_MS:.0f} ms and a fallback <= "
        f"{FALLBACK_EXTRA_MS:.0f} ms over a direct teacher call (p50, final third)",
        "idle_p50_ms": p50,
        "idle_p95_ms": p95,
        "served_p50_ms": served,
        "fallback_p50_ms": fallback,
        "direct_teacher_p50_ms": direct,
        "fallback_extra_ms": extra,
        "met": p50 is not None
        and p95 is not None
        and served is not None
        and extra is not None
        and p50 <= IDLE_P50_MS
        and p95 <= IDLE_P95_MS
        and served <= SERVED_P50_MS
        and extra <= FALLBACK_EXTRA_MS,
    }


def goals(
    raw: dict[str, Any], summary: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "student_alone": student_alone(summary, rows),
        "cascade": cascade(summary),
        "serves_from": serves_from(raw),
        "latency": latency(raw, summary),
        "time": {
            "target": f"whole run in at most {MINUTES_BUDGET:.0f} minutes",
            "minutes": summary["minutes"],
            "met": summary["minutes"] <= MINUTES_BUDGET,
        },
    }
