"""The mixed benchmark: traffic proportions, requests without task names, the per-task
report and the goals of issue 24 on a hand-made raw record."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bench.harness.driver import Driver, DriverConfig
from bench.harness.examples import Example
from bench.harness.report_tasks import attach_thresholds, proxy_thresholds, task_table
from bench.harness.stats import Prices
from bench.harness.traffic import allocate, mixed_traffic
from bench.mixed.config import DEFAULT_SHARES, build_tasks, parse_settings
from bench.mixed.goals import goals
from bench.mixed.report import write_report
from bench.mixed.run import MixedBench


def test_allocation_follows_the_shares_exactly() -> None:
    assert allocate(4000, DEFAULT_SHARES) == {
        "banking77": 1600, "clinc150": 1000, "snips": 1000, "freeform": 400,
    }  # fmt: skip
    assert allocate(100, DEFAULT_SHARES) == {
        "banking77": 40, "clinc150": 25, "snips": 25, "freeform": 10,
    }  # fmt: skip
    odd = allocate(7, {"a": 1, "b": 1, "c": 1})
    assert sum(odd.values()) == 7 and sorted(odd.values()) == [2, 2, 3]
    with pytest.raises(ValueError):
        allocate(5, {"a": 0.0})


def test_mixed_traffic_is_shuffled_seeded_and_keeps_each_task_order() -> None:
    pools = {
        "a": [Example(f"a{i}", "x") for i in range(50)],
        "b": [Example(f"b{i}", "y") for i in range(10)],
    }
    traffic = mixed_traffic(pools, {"a": 0.8, "b": 0.2}, 100, seed=3)
    assert [i for i, _ in traffic] == list(range(100))
    assert Counter(ex.task for _, ex in traffic) == {"a": 80, "b": 20}
    a_texts = [ex.text for _, ex in traffic if ex.task == "a"]
    assert a_texts[:50] == [f"a{i}" for i in range(50)]  # the pool's own order, then again
    assert [ex.text for _, ex in traffic if ex.task == "b"][:10] == [f"b{i}" for i in range(10)]
    assert traffic == mixed_traffic(pools, {"a": 0.8, "b": 0.2}, 100, seed=3)
    assert traffic != mixed_traffic(pools, {"a": 0.8, "b": 0.2}, 100, seed=4)
    first_tasks = {ex.task for _, ex in traffic[:20]}
    assert first_tasks == {"a", "b"}  # interleaved, not one block after the other


@pytest.fixture(scope="module")
def full_bench() -> MixedBench:
    return MixedBench(parse_settings([]))


def test_default_run_sends_4000_requests_in_issue_24_proportions(full_bench: MixedBench) -> None:
    counts = Counter(ex.task for _, ex in full_bench.traffic)
    assert counts == {"banking77": 1600, "clinc150": 1000, "snips": 1000, "freeform": 400}
    assert len({ex.text for _, ex in full_bench.traffic if ex.task == "snips"}) == 1000
    for task in full_bench.tasks:
        mine = {ex.text for _, ex in full_bench.traffic if ex.task == task}
        validation = {ex.text for ex in full_bench.validation if ex.task == task}
        assert validation and not mine & validation
    quick = MixedBench(parse_settings(["--quick"]))
    assert Counter(ex.task for _, ex in quick.traffic) == {
        "banking77": 40, "clinc150": 25, "snips": 25, "freeform": 10,
    }  # fmt: skip


def test_requests_carry_no_task_name_unless_asked(full_bench: MixedBench) -> None:
    plain = full_bench.driver("http://127.0.0.1:9/v1", "k", 1)
    named = Driver(
        DriverConfig("http://127.0.0.1:9/v1", name_tasks=True), list(full_bench.tasks.values())
    )
    seen_prompts = set()
    for _, ex in full_bench.traffic[:200]:
        body = plain.request(ex)
        assert body["extra_headers"] is None and body["model"] == "support-app"
        seen_prompts.add(body["messages"][0]["content"])
        assert ("response_format" in body) == (ex.task == "snips")
        assert named.request(ex)["extra_headers"] == {"x-distill-task": ex.task}
    assert len(seen_prompts) == 4  # each task its own system prompt
    assert parse_settings(["--name-tasks"]).name_tasks


def _record(ex: Example, index: int, task: Any, answer: str, route: str) -> dict[str, Any]:
    s = task.score(answer, ex)
    return {
        "index": index, "task": ex.task, "gold": ex.answer, "answer": answer,
        "predicted": s.predicted, "correct": s.correct, "metrics": s.metrics, "route": route,
        "status": 200, "latency_ms": 10.0, "prompt_tokens": 100, "completion_tokens": 10,
        "student_version": "v3" if route == "student" else None, "task_seen": None,
        "reason": None, "error": None,
    }  # fmt: skip


def _raw(bench: MixedBench, n: int = 400, broken: int | None = None) -> dict[str, Any]:
    """All-teacher answers are gold; through the proxy the student serves the intent tasks
    (right), half of SNIPS (request `broken` gets invalid JSON), none of the free-form
    control."""
    teacher, learning = [], []
    for i, ex in bench.traffic[:n]:
        task = bench.tasks[ex.task]
        teacher.append(_record(ex, i, task, ex.answer, "teacher"))
        route = "teacher" if ex.task == "freeform" or (ex.task == "snips" and i % 2) else "student"
        answer = "{broken" if i == broken else ex.answer
        learning.append(_record(ex, i, task, answer, route))
    return {
        "tasks": {name: {} for name in bench.tasks},
        "settings": {"target_agreement": 0.8, "shares": DEFAULT_SHARES},
        "prices": Prices().to_dict(),
        "teacher_baseline": {"records": teacher},
        "segments": [{"round": 1, "records": learning}],
        "calibration_final": {"versions": {"v3": {"role": "current", "threshold": 0.42}}},
        "minutes": 50.0,
    }


def test_report_per_task_and_goals(full_bench: MixedBench, tmp_path: Any) -> None:
    summary = write_report(_raw(full_bench), tmp_path)
    written = {p.name for p in tmp_path.iterdir()}
    assert {"summary.json", "rounds.json", "results.md", "routing.png"} <= written
    # No validation rounds in this record: the quality plot has nothing to draw.
    assert summary["plots"] == ["routing.png"] and "quality.png" not in written
    assert (tmp_path / "routing.png").read_bytes()[:4] == b"\x89PNG"
    assert "![routing](routing.png)" in (tmp_path / "results.md").read_text()
    quarter = summary["final_quarter"]
    assert set(quarter["tasks"]) == set(full_bench.tasks)
    b = quarter["tasks"]["banking77"]
    assert b["teacher_call_fraction"] == 0 and b["quality_ratio"] == 1.0
    assert b["student_version"] == "v3" and b["threshold"] == 0.42
    assert quarter["tasks"]["freeform"]["student_served"] == 0
    # all to the teacher, plus the student's attempt at each: a little over all-teacher
    assert 1.0 < quarter["tasks"]["freeform"]["cost_ratio"] < 1.05
    assert all(g["met"] for g in summary["goals"].values()), summary["goals"]
    assert "| banking77 |" in (tmp_path / "results.md").read_text()
    # One invalid SNIPS answer served by the student in the final quarter fails the goal.
    served = [i for i, ex in full_bench.traffic[300:400] if ex.task == "snips" and i % 2 == 0]
    broken = write_report(_raw(full_bench, broken=served[0]), tmp_path / "broken")
    assert broken["final_quarter"]["tasks"]["snips"]["student_answers"]["schema_valid"] < 1.0
    assert not broken["goals"]["quality"]["met"]


def test_goals_flag_a_task_that_keeps_the_teacher() -> None:
    def block(fraction: float, ratio: float) -> dict[str, Any]:
        return {"teacher_call_fraction": fraction, "quality_ratio": ratio, "student_served": 0}

    quarter = {
        "overall": {"teacher_call_fraction": 0.4},
        "tasks": {"banking77": block(0.2, 0.99), "clinc150": block(0.5, 0.99),
                  "snips": block(0.5, 0.99)},
    }  # fmt: skip
    g = goals({"final_quarter": quarter, "minutes": 100})
    assert not g["teacher_share"]["met"] and g["teacher_share"]["per_task"]["clinc150"] == 0.5
    quarter["tasks"]["clinc150"] = block(0.3, 0.99)
    assert goals({"final_quarter": quarter, "minutes": 100})["teacher_share"]["met"]
    quarter["tasks"]["snips"] = block(0.5, 0.9)
    assert not goals({"final_quarter": quarter, "minutes": 100})["quality"]["met"]
    assert not goals({"final_quarter": quarter, "minutes": 120})["time"]["met"]
    # A run that measured nothing meets nothing (a partial report of a failed run).
    empty = goals({"final_quarter": {"overall": {}, "tasks": {}}, "minutes": 5})
    assert not any(empty[k]["met"] for k in ("teacher_share", "control", "quality"))


def test_thresholds_per_task_from_the_proxy_when_it_has_them() -> None:
    tasks = build_tasks(["banking77"])
    ex = Example("I lost my card", "lost_or_stolen_card", task="banking77")
    rec = _record(ex, 0, tasks["banking77"], ex.answer, "student") | {"task_seen": "t-bank"}
    table = task_table(tasks, [rec], [rec], Prices())
    attach_thresholds(
        table, proxy_thresholds({"tasks": [{"name": "t-bank", "threshold": 0.7}]}, None)
    )
    assert table["tasks"]["banking77"]["threshold"] == 0.7
    assert table["tasks"]["banking77"]["tasks_seen"] == {"t-bank": 1}
    assert proxy_thresholds(None, None) == {}


def test_proxy_thresholds_read_each_tasks_serving_slot() -> None:
    tasks = {"tasks": [{"task": "t-bank", "serving": {"threshold": 0.6, "version": "r1"}}]}
    found = proxy_thresholds(tasks, None)["t-bank"]
    assert (found["threshold"], found["version"]) == (0.6, "r1")
