"""The mixed benchmark's goals (issue 24: many tasks through one base URL), checked on the
final quarter of the learning traffic. Every goal carries its target in words, the
measured values and `met`; `report` prints them."""

from __future__ import annotations

from typing import Any

OVERALL_TEACHER_SHARE = 0.50
TASK_TEACHER_SHARE = {"banking77": 0.35, "clinc150": 0.35, "snips": 0.60}
QUALITY_RATIO = 0.98  # served quality / all-teacher quality, per task
OOS_RECALL_POINTS = 0.02  # CLINC150: served out-of-scope recall at most this below the teacher's
MINUTES_BUDGET = 110.0
INTENT_TASKS = ("banking77", "clinc150")


def _num(block: dict[str, Any] | None, *path: str) -> float | None:
    value: Any = block
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def teacher_share(quarter: dict[str, Any]) -> dict[str, Any]:
    tasks = quarter.get("tasks") or {}
    overall = _num(quarter, "overall", "teacher_call_fraction")
    per_task = {n: _num(tasks.get(n), "teacher_call_fraction") for n in TASK_TEACHER_SHARE}
    ok = overall is not None and overall <= OVERALL_TEACHER_SHARE
    for name, limit in TASK_TEACHER_SHARE.items():
        share = per_task[name]
        if name in tasks:
            ok = ok and share is not None and share <= limit
    return {
        "target": f"final quarter: <= {OVERALL_TEACHER_SHARE:.0%} of all requests to the "
        "teacher; <= 35% of each intent task's, <= 60% of the extraction task's",
        "overall": overall,
        "per_task": per_task,
        "met": ok,
    }


def control(quarter: dict[str, Any], target: float | None) -> dict[str, Any]:
    """The free-form control: the student may serve it only within its calibrated target."""
    block = (quarter.get("tasks") or {}).get("freeform")
    served = int(_num(block, "student_served") or 0)
    agreement = _num(block, "student_answers", "agreement")
    limit = target if target is not None else 1.0
    return {
        "target": "free-form control served by the student only within its calibrated target "
        f"(agreement with the teacher >= {limit:.0%} where served; in practice: not at all)",
        "student_served": served,
        "agreement_where_served": agreement,
        "met": bool(quarter.get("tasks"))
        and (block is None or served == 0 or (agreement is not None and agreement >= limit)),
    }


def quality(quarter: dict[str, Any]) -> dict[str, Any]:
    tasks = quarter.get("tasks") or {}
    ratios = {n: _num(b, "quality_ratio") for n, b in tasks.items() if n != "freeform"}
    clinc = tasks.get("clinc150")
    served_oos, teacher_oos = (_num(clinc, k, "oos_recall") for k in ("served", "all_teacher"))
    valid = _num(tasks.get("snips"), "student_answers", "schema_valid")
    # No traffic measured is no evidence: the goal is not met.
    ok = bool(ratios) and all(r is not None and r >= QUALITY_RATIO for r in ratios.values())
    if clinc is not None and teacher_oos is not None:
        ok = ok and served_oos is not None and served_oos >= teacher_oos - OOS_RECALL_POINTS
    if "snips" in tasks:
        ok = ok and (valid is None or valid == 1.0)  # None: the student served none
    return {
        "target": f"final quarter, each task's served quality >= {QUALITY_RATIO:.0%} of its "
        "all-teacher quality (accuracy; SNIPS slot F1), CLINC150 out-of-scope recall at "
        "most 2 points below the teacher's, every served SNIPS answer valid",
        "quality_ratio": ratios,
        "clinc150_oos_recall": {"served": served_oos, "all_teacher": teacher_oos},
        "snips_student_schema_valid": valid,
        "met": ok,
    }


def goals(summary: dict[str, Any]) -> dict[str, Any]:
    quarter = summary.get("final_quarter") or {}
    target = (summary.get("settings") or {}).get("target_agreement")
    minutes = float(summary.get("minutes") or 0.0)
    return {
        "teacher_share": teacher_share(quarter),
        "control": control(quarter, target),
        "quality": quality(quarter),
        "time": {
            "target": f"whole run in at most {MINUTES_BUDGET:.0f} minutes",
            "minutes": minutes,
            "met": minutes <= MINUTES_BUDGET,
        },
    }
