"""The scorer comparison on validation answers: same answers, ranked per scorer."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.banking77.report_md import _scorer_lines
from bench.banking77.scorers import (
    best_scorer,
    cascade_estimate,
    compare_scorers,
    coverage_curve,
    scorers_by_round,
)
from trainer.confidence import SCORERS, score_response


def _record(
    correct: bool, logprobs: list[float], spread: float, status: int = 200
) -> dict[str, Any]:
    """A validation record as the driver stores it, scores computed by the proxy's scorers."""
    content = [
        {
            "token": f"t{i}",
            "logprob": lp,
            "top_logprobs": [
                {"token": f"t{i}", "logprob": lp},
                {"token": "x", "logprob": lp - spread},
            ],
        }
        for i, lp in enumerate(logprobs)
    ]
    payload = {"choices": [{"logprobs": {"content": content}}]}
    scores = {name: score_response(name, payload) for name in SCORERS}
    return {"correct": correct, "status": status, "scores": scores}


def test_scorers_rank_the_same_answers_differently() -> None:
    # Right answers: one sure token then a shaky one (mean high, min low).
    # Wrong answer: two middling tokens (mean lower, min higher).
    records = [
        _record(True, [-0.01, -1.0], 5.0),
        _record(True, [-0.01, -1.0], 5.0),
        _record(False, [-0.6, -0.6], 0.1),
        _record(False, [-0.01], 1.0, status=503),  # failed requests are not answers
        {"correct": False, "status": 200, "scores": None},  # asked without logprobs
    ]
    report = compare_scorers(records)
    assert report is not None
    assert report["n"] == 3 and report["accuracy"] == pytest.approx(2 / 3)
    curves = report["scorers"]
    assert set(curves) == set(SCORERS)
    assert curves["mean_logprob"]["accuracy_at"]["0.5"] == 1.0  # right answers first
    assert curves["min_prob"]["accuracy_at"]["0.1"] == 0.0  # the wrong one first
    assert curves["mean_logprob"]["auc"] > curves["min_prob"]["auc"]
    assert best_scorer(report) != "min_prob"


def test_auc_is_one_for_a_perfect_ranking() -> None:
    assert coverage_curve([(0.9, True), (0.5, True)])["auc"] == 1.0
    assert coverage_curve([(0.9, True), (0.5, True), (0.1, False)])["auc"] == pytest.approx(
        (1 + 1 + 2 / 3) / 3
    )
    assert coverage_curve([]) == {"n": 0, "auc": None, "accuracy_at": {}}


def test_infinite_scores_are_left_out_of_that_scorer_only() -> None:
    empty = {
        "correct": False,
        "status": 200,
        "scores": {"mean_logprob": -math.inf, "min_prob": 0.5},
    }
    report = compare_scorers([empty, _record(True, [-0.1], 1.0)])
    assert report is not None
    assert report["scorers"]["mean_logprob"]["n"] == 1
    assert report["scorers"]["min_prob"]["n"] == 2


def test_rounds_are_compared_and_rendered() -> None:
    raw = {
        "base_validation": {"records": [_record(False, [-2.0], 0.1)]},
        "segments": [
            {"round": 1, "validation": {"records": [_record(True, [-0.1], 3.0)]}},
            {"round": 2},  # the final stretch of traffic has no validation
        ],
    }
    table = scorers_by_round(raw)
    assert list(table) == ["base", "round 1"]
    lines = _scorer_lines(table)
    assert "Student after round 1: 1 answers, 100.0% correct." in lines
    assert sum(line.startswith("| mean_logprob | ") for line in lines) == 2


def test_cascade_estimate_mixes_student_top_share_and_teacher() -> None:
    curve = {"accuracy_at": {"0.2": 1.0, "1.0": 0.5}}
    rows = cascade_estimate(curve, teacher_accuracy=0.9)
    assert rows[0] == pytest.approx(
        {"student_share": 0.2, "teacher_call_fraction": 0.8, "served_accuracy": 0.92}
    )
    assert rows[1]["served_accuracy"] == pytest.approx(0.5)
    block = {"n": 1, "accuracy": 1.0, "scorers": {"min_prob": curve | {"auc": 0.8}}}
    lines = _scorer_lines({"round 1": block}, teacher_accuracy=0.9)
    assert any("student 20% -> 92.0%" in line for line in lines)


def test_coverage_at_95_is_the_largest_share_still_95_percent_right() -> None:
    from bench.banking77.scorers import coverage_curve

    # 19 right at the top, then 1 wrong (19/20 = 95 %), then 10 wrong.
    items = [(1.0 - i / 100, True) for i in range(19)] + [(0.5, False)]
    items += [(0.1 - i / 1000, False) for i in range(10)]
    assert coverage_curve(items)["coverage_at_95"] == 20 / 30
    assert coverage_curve([(0.9, False), (0.8, True)])["coverage_at_95"] == 0.0
