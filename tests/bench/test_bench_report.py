"""Report generation from a fake raw record, and the arithmetic under it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.banking77.report import build_rounds, write_report
from bench.harness.checks import machinery_problems
from bench.harness.stats import Prices, percentile, rolling, segment_summary

PRICES = Prices(teacher_in=2.0, teacher_out=10.0, student_in=0.0, student_out=0.0)


def _rec(
    index: int,
    route: str | None,
    correct: bool,
    latency: float = 100.0,
    phase: str = "learning",
    tokens: tuple[int, int] = (100, 10),
) -> dict[str, Any]:
    return {
        "phase": phase,
        "round": 1,
        "index": index,
        "gold": "card_arrival",
        "stream": False,
        "status": 200,
        "answer": "card_arrival" if correct else "x",
        "predicted": None,
        "correct": correct,
        "route": route,
        "confidence": -0.1,
        "degraded": None,
        "student_version": None,
        "latency_ms": latency,
        "ttfb_ms": None,
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "error": None,
    }


def fake_raw() -> dict[str, Any]:
    teacher = [_rec(i, None, i % 10 != 0, 300.0, "teacher") for i in range(40)]
    seg1 = [_rec(i, "teacher", i % 10 != 0, 350.0) for i in range(20)]
    seg2 = [_rec(i, "student" if i % 4 else "teacher", i % 5 != 0, 120.0) for i in range(20, 40)]
    validation = [_rec(1_000_000 + i, "student", i % 2 == 0, 90.0, "validation") for i in range(10)]
    return {
        "settings": {"requests": 40, "retrain_every": 20, "quick": True},
        "prices": PRICES.to_dict(),
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gib": 24.0},
        "date": "2025-01-01 00:00 UTC",
        "minutes": 12.5,
        "notes": ["fake run"],
        "teacher_baseline": {"records": teacher},
        "static": {
            "records": [_rec(i, "teacher", True, 400.0, "static") for i in range(5)],
            "teacher_spend_usd": None,
            "settings": {"threshold": -0.5},
        },
        "base_validation": {
            "records": [
                _rec(1_000_000 + i, "student", False, 90.0, "validation") for i in range(10)
            ]
        },
        "segments": [
            {
                "round": 1,
                "records": seg1,
                "teacher_spend_usd": None,
                "run": {"status": "promoted"},
                "training_seconds": 61.0,
                "validation": {"records": validation},
            },
            {"round": 2, "records": seg2, "teacher_spend_usd": 0.0012},
        ],
    }


def test_percentile_and_rolling() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 95) == 5.0
    assert rolling([1.0, 0.0, 1.0, 1.0], 2) == [1.0, 0.5, 0.5, 1.0]


def test_segment_summary_costs() -> None:
    records = [_rec(0, "teacher", True), _rec(1, "student", True), _rec(2, "student", False)]
    baseline = {0: 0.01, 1: 0.01, 2: 0.01}
    s = segment_summary(records, PRICES, baseline)
    teacher_cost = (100 * 2.0 + 10 * 10.0) / 1e6
    assert s["teacher_calls"] == 1 and s["fallback_rate"] == pytest.approx(1 / 3)
    assert s["served_accuracy"] == pytest.approx(2 / 3)
    assert s["cost_usd"] == pytest.approx(teacher_cost)
    assert s["cost_ratio"] == pytest.approx(teacher_cost / 0.03)
    measured = segment_summary(records, PRICES, baseline, teacher_spend=0.003)
    assert measured["cost_ratio"] == pytest.approx(0.1)


def test_rounds_follow_the_segments() -> None:
    rows = build_rounds(fake_raw())
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert rows[0]["student_only_accuracy"] == 0.0
    assert rows[1]["requests_so_far"] == 20 and rows[2]["requests_so_far"] == 40
    assert rows[1]["segment"]["fallback_rate"] == 1.0
    assert rows[2]["segment"]["fallback_rate"] == pytest.approx(5 / 20)
    assert rows[1]["student_only_accuracy"] == 0.5
    assert rows[2]["student_only_accuracy"] == 0.5  # no run after the last segment
    assert rows[1]["training_seconds"] == 61.0


def test_write_report(tmp_path: Path) -> None:
    summary = write_report(fake_raw(), tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    required = {
        "requests",
        "teacher_accuracy",
        "student_only_accuracy",
        "served_accuracy",
        "teacher_call_fraction",
        "cost_ratio",
        "minutes",
        "date",
        "machine",
    }
    assert required <= set(saved)
    assert saved["requests"] == 40
    assert saved["teacher_accuracy"] == pytest.approx(0.9)
    assert saved["served_accuracy"] == pytest.approx(0.8)
    assert saved["teacher_call_fraction"] == pytest.approx(0.25)
    assert saved["cost_ratio"] == pytest.approx(0.0012 / (20 * (100 * 2.0 + 10 * 10.0) / 1e6))
    assert saved["machine"]["cpu"] == "Test CPU"
    assert summary["goals"]["time"]["met"] is True
    assert summary["goals"]["cascade"]["met"] is False
    md = (tmp_path / "results.md").read_text()
    assert "| round | requests so far |" in md
    assert "all-teacher (replay teacher, same traffic)" in md
    assert "static-threshold cascade, never retrained" in md
    assert "base student alone" in md
    assert "NOT met" in md
    for png in ("routing_cost.png", "accuracy.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
        assert f"]({png})" in md


def test_machinery_checks() -> None:
    raw = fake_raw()
    assert machinery_problems(raw) == []
    raw["segments"][0]["run"] = {"id": "r1", "status": "failed", "raw": {"reason": "NotEnoughData"}}
    raw["segments"][1]["records"][0]["error"] = "APIConnectionError: boom"
    raw["segments"][1]["proxy_cost"] = {"cost_usd": 0.0, "requests": 3.0}
    problems = machinery_problems(raw)
    assert any("ended failed: NotEnoughData" in p for p in problems)
    assert any("1 of 20 round-2 requests failed" in p for p in problems)
    assert any("logged 3 of 20" in p for p in problems)
    assert machinery_problems({"segments": []}) == ["the all-teacher baseline did not run"]


def test_final_third_spreads_teacher_overhead_over_its_records() -> None:
    from bench.banking77.report import final_third
    from bench.harness.stats import teacher_cost_from_usage

    raw = fake_raw()
    third = final_third(raw)
    assert third is not None
    # 40 learning requests: the last 13 (from request 27 on), all in segment 2, which
    # carries its teacher spend beyond usage (shadow calls): 13 of its 20 requests' share.
    assert third["first_request"] == 27 and third["requests"] == 13
    seg2 = raw["segments"][1]["records"]
    overhead = 0.0012 - teacher_cost_from_usage(seg2, PRICES)
    tail = [r for seg in raw["segments"] for r in seg["records"]][27:]
    assert third["teacher_cost_usd"] == pytest.approx(
        teacher_cost_from_usage(tail, PRICES) + overhead * 13 / 20
    )
    assert third["fallback_rate"] == pytest.approx(sum(r["route"] == "teacher" for r in tail) / 13)


def test_calibration_rounds_and_evidence(tmp_path: Path) -> None:
    from bench.banking77.data import Example
    from bench.banking77.report_calibration import calibration_by_round, evidence_check

    raw = fake_raw()
    raw["segments"][1]["calibration_end"] = {
        "mode": "calibration",
        "target_agreement": 0.8,
        "versions": {
            "v1": {"role": "current", "threshold": 0.9, "evidence": {
                "status": "calibrated", "pairs": 300, "coverage": 0.55, "lower": 0.81}},
            "base": {"role": "previous", "threshold": None, "evidence": None},
        },
    }  # fmt: skip
    rows = calibration_by_round(raw)
    assert rows[0]["during_segment"] is None and rows[0]["served_share"] == 0.0
    current = rows[1]["during_segment"]
    assert current["version"] == "v1" and current["status"] == "calibrated"
    assert current["coverage_estimate"] == 0.55 and rows[1]["served_share"] == 15 / 20

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    items = [
        # student right, teacher wrong: a disagreement that is the teacher's fault
        {"query": "q1", "answer": "card_arrival", "reference": "lost_or_stolen_card",
         "agree": False},
        {"query": "q2", "answer": "card_arrival", "reference": "card_arrival", "agree": True},
        {"query": "q3", "answer": "lost_or_stolen_card", "reference": "card_arrival",
         "agree": False},
        {"query": "unknown", "answer": "x", "reference": "x", "agree": True},
    ]  # fmt: skip
    (run / "eval_items.json").write_text(json.dumps(items))
    examples = [Example("q1", "card_arrival"), Example("q2", "card_arrival"),
                Example("q3", "card_arrival")]  # fmt: skip
    (check,) = evidence_check([run], examples)
    assert check["n"] == 3
    assert check["agreement_with_teacher"] == pytest.approx(1 / 3)
    assert check["student_gold_accuracy"] == pytest.approx(2 / 3)
    assert check["teacher_gold_accuracy"] == pytest.approx(2 / 3)
    assert check["both_right"] == pytest.approx(1 / 3)


def test_learning_table_joins_runs_reports_and_validation() -> None:
    from bench.banking77.report import learning_table

    raw = fake_raw()
    raw["segments"][0]["run"] = {"id": "r1", "status": "promoted"}
    raw["segments"][0]["latency_probes"] = {
        "idle": {"p50_ms": 400.0, "p95_ms": 600.0},
        "during_training": {"p50_ms": 900.0, "p95_ms": 2000.0},
    }
    raw["run_reports"] = {"r1": {"train_rows": 15, "calibration_rows": 3, "epochs": 2.0,
                                 "warm_started": False, "train_seconds": 120.0}}  # fmt: skip
    (row,) = learning_table(raw)
    assert row["run"] == "r1" and row["train_rows"] == 15 and row["train_minutes"] == 2.0
    assert row["run_minutes"] == pytest.approx(61.0 / 60)
    assert row["student_accuracy"] == 0.5  # every other validation answer right
    assert row["student_p50_ms_idle"] == 400.0 and row["student_p95_ms_training"] == 2000.0
