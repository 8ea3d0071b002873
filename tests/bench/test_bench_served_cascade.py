"""The hand-set-threshold replay: its threshold choice and its report section."""

from __future__ import annotations

import pytest

from bench.banking77.report_md import _served_cascade_lines
from bench.banking77.served_cascade import threshold_for_coverage


def _val(scores: list[float]) -> dict[str, object]:
    return {"records": [{"scores": {"min_prob": s, "mean_logprob": -9.0}} for s in scores]}


def test_threshold_comes_from_the_final_validation_answers() -> None:
    raw = {"settings": {"scorer": "min_prob"}, "segments": [
        {"validation": _val([0.1, 0.2, 0.3, 0.4])},
        {"validation": _val([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])},
        {"records": []},  # the final stretch of traffic has no validation
    ]}  # fmt: skip
    assert threshold_for_coverage(raw, 0.5) == 0.5  # five of ten at or above it
    assert threshold_for_coverage(raw, 0.1) == 0.9
    assert threshold_for_coverage(raw, 1.0) == 0.05


def test_runs_without_scores_are_refused() -> None:
    with pytest.raises(SystemExit, match="no scores"):
        threshold_for_coverage(
            {"settings": {}, "segments": [{"validation": {"records": [{}]}}]}, 0.5
        )


def test_report_section_quotes_the_measurement() -> None:
    lines = _served_cascade_lines(
        {"first_request": 2014, "scorer": "sequence_prob", "threshold": 0.5, "requests": 986,
         "errors": 0, "served_accuracy": 0.9, "teacher_call_fraction": 0.4,
         "cost_ratio_usage": 0.45, "cost_ratio": 0.42, "validation_coverage": 0.5},
        teacher_accuracy=0.91,
    )  # fmt: skip
    text = "\n".join(lines)
    assert "the top 50% of the final validation answers" in text
    assert "Served accuracy: 90.0% (98.9% of all-teacher)" in text
    assert "Teacher calls: 40.0%" in text and "Cost vs all-teacher: 45.0% from usage" in text
