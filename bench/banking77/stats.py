"""Old import path of `bench.harness.stats` (the harness every benchmark shares)."""

from __future__ import annotations

from bench.harness.stats import (
    Prices,
    Record,
    accuracy,
    all_teacher_cost,
    baseline_costs,
    latency_by_route,
    percentile,
    rolling,
    segment_summary,
    student_cost,
    teacher_cost_from_usage,
)

__all__ = [
    "Prices",
    "Record",
    "accuracy",
    "all_teacher_cost",
    "baseline_costs",
    "latency_by_route",
    "percentile",
    "rolling",
    "segment_summary",
    "student_cost",
    "teacher_cost_from_usage",
]
