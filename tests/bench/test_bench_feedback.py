"""Banking77 `--feedback-rate` at a tiny scale: the driver corrects a share of the teacher's
answers through the real app's POST /v1/feedback, and the run record summarises it."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.banking77.config import parse_settings
from bench.banking77.data import Example
from bench.banking77.driver import Driver, DriverConfig
from bench.banking77.feedback import feedback_summary, side_by_side, write_side_by_side
from bench.banking77.report import write_report
from tests.bench.test_bench_report import fake_raw
from tests.fakes import FakeUpstream

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
EXAMPLES = [(i, Example(f"customer query {i}", LABELS[i % 3])) for i in range(12)]


def test_feedback_rate_flag() -> None:
    assert parse_settings(["--quick"]).feedback_rate == 0.0
    assert parse_settings(["--quick"]).feedback_compare is None
    assert parse_settings(["--quick", "--feedback-rate", "0.05"]).feedback_rate == 0.05
    assert parse_settings(["--feedback-compare", "0.05"]).feedback_compare == 0.05
    with pytest.raises(SystemExit):
        parse_settings(["--feedback-rate", "1.5"])
    with pytest.raises(SystemExit):
        parse_settings(["--feedback-compare", "-0.1"])


def _drive(h: Any, rate: float, phase: str) -> list[Any]:
    async def go() -> list[Any]:
        cfg = DriverConfig(base_url=f"{h.url}/v1", concurrency=2, feedback_rate=rate, seed=3)
        driver = Driver(cfg, LABELS)
        try:
            return await driver.run(EXAMPLES, phase, 1, force_stream=False)
        finally:
            await driver.aclose()

    return asyncio.run(go())


def _stored(h: Any) -> list[tuple[str, str]]:
    return h.app.state.writer.read(  # type: ignore[no-any-return]
        lambda c: c.execute("SELECT request_id, correction FROM feedback").fetchall()
    )


def test_driver_sends_the_dataset_label_for_a_share_of_teacher_answers(
    make_proxy: Callable[..., Any],
) -> None:
    # An unsure student: every answer comes from the teacher (which always says card_arrival).
    student = FakeUpstream(default_text="card_arrival", logprob=-5.0)
    teacher = FakeUpstream(default_text="card_arrival")
    with make_proxy(student=student, teacher=teacher) as h:
        none = _drive(h, 0.0, "learning")
        assert all(r.route == "teacher" and r.feedback is None for r in none)
        assert _drive(h, 1.0, "validation") and _stored(h) == []  # only the learning phase
        half = _drive(h, 0.5, "learning")
        sent = [r for r in half if r.feedback == "sent"]
        assert 0 < len(sent) < len(half)
        assert all(r.feedback is None for r in half if r not in sent)
        by_id = {r.request_id: r.gold for r in sent}
        assert dict(_stored(h)) == by_id
        # Seeded: the same queries get feedback on a rerun.
        again = _drive(h, 0.5, "learning")
        assert sorted(r.index for r in again if r.feedback) == sorted(r.index for r in sent)

    raw = {"segments": [{"records": [r.to_dict() for r in half]}], "settings": {}}
    summary = feedback_summary(raw, 0.5)
    assert summary["sent"] == len(sent) and summary["teacher_answers"] == len(half)
    expected = sum(r.correct for r in sent) / len(sent)
    assert summary["teacher_accuracy_on_sent"] == pytest.approx(expected)


def test_summary_reads_the_proxy_measure_and_runs_side_by_side(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    gold = {"n": 40, "accuracy": 0.9, "low": 0.77, "high": 0.96}
    report.write_text(
        json.dumps(
            {
                "run_id": "r9",
                "dataset": {"feedback": {"gold_rows": 40, "teacher_gold_accuracy": gold}},
                "evaluation": {"candidate": {"gold": {"accuracy": {"n": 4, "accuracy": 1.0}}}},
            }
        )
    )
    raw = {
        "segments": [{"records": [], "run": {"raw": {"report_path": str(report)}}}],
        "settings": {"teacher_accuracy": 0.92},
    }
    summary = feedback_summary(raw, 0.05)
    measured = summary["proxy_measured"]
    assert measured["teacher_gold_accuracy"] == gold and measured["gold_rows"] == 40
    table = side_by_side(
        [
            {"student_only_accuracy": 0.8, "teacher_call_fraction": 0.3, "settings": {}},
            {
                "student_only_accuracy": 0.85,
                "teacher_call_fraction": 0.25,
                "feedback": summary,
                "settings": {"teacher_accuracy": 0.92},
            },
        ],
        ["0%", "5%"],
    )
    assert "| student-only accuracy | 0.800 | 0.850 |" in table
    assert "| teacher gold accuracy (proxy) | n/a | 0.900 |" in table
    assert "| configured teacher accuracy | n/a | 0.920 |" in table


def test_one_run_reports_both_arms_side_by_side(tmp_path: Path) -> None:
    raw = fake_raw()
    raw["feedback"] = feedback_summary(raw, 0.0)
    arm = copy.deepcopy({k: raw[k] for k in ("segments", "base_validation")})
    for rec in arm["segments"][1]["records"]:
        rec["route"], rec["correct"] = "student", True  # the fed-back arm learnt more
    arm["feedback_rate"] = 0.05
    arm["feedback"] = {**feedback_summary({**raw, **arm}, 0.05), "sent": 2}
    raw["feedback_arm"] = arm
    summary = write_report(raw, tmp_path)
    text = write_side_by_side(raw, summary, tmp_path)
    assert "| | 0% feedback | 5% feedback |" in text
    assert "| feedback rate | 0.000 | 0.050 |" in text
    assert "| teacher-call fraction (final round) | 0.250 | 0.000 |" in text
    assert (tmp_path / "feedback.md").read_text() == text
    assert json.loads((tmp_path / "feedback_arm_summary.json").read_text())["requests"] == 40
