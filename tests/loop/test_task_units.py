"""Units of the per-task loop: the choice of the task to train (expected savings per CPU
minute) and the serving slots by task."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from proxy.logstore.schema import migrate
from proxy.loop.tasks import (
    DEFAULT_RUN_MINUTES,
    MIN_REACHABLE,
    TaskTraffic,
    best_agreement,
    choose,
    savings_per_minute,
    task_traffic,
)
from proxy.serving.student_state import ActiveStudent, ActiveStudents, StudentVersion
from proxy.tasks.config import TaskOverride


def _traffic(task: str, **kw: object) -> TaskTraffic:
    values: dict[str, object] = {
        "recent": 100, "student_served": 0, "cost_per_request": 0.01, "teacher_rows": 100,
        "new_teacher_rows": 100, "has_run": False, "run_minutes": None,
    }  # fmt: skip
    values.update(kw)
    return TaskTraffic(task=task, **values)  # type: ignore[arg-type]


def test_savings_are_volume_times_cost_times_unserved_share_per_minute() -> None:
    t = _traffic("a", recent=200, student_served=50, cost_per_request=0.02, run_minutes=10.0)
    assert savings_per_minute(t, DEFAULT_RUN_MINUTES) == 200 * 0.02 * 0.75 / 10.0
    unpriced = _traffic("b", cost_per_request=None, recent=10)
    assert savings_per_minute(unpriced, 5.0) == 10 * 1.0 * 1.0 / 5.0


def test_a_refit_is_worth_the_share_of_rows_it_learns_from_first() -> None:
    refit = _traffic("a", has_run=True, teacher_rows=1000, new_teacher_rows=200, run_minutes=1.0)
    assert savings_per_minute(refit, DEFAULT_RUN_MINUTES) == 100 * 0.01 * 1.0 * 0.2 / 1.0
    first = _traffic("b", teacher_rows=180, new_teacher_rows=180, run_minutes=None)
    assert savings_per_minute(first, 1.0) == 100 * 0.01 * 1.0 * 1.0 / 1.0


def test_a_cheap_refit_of_a_well_fed_task_does_not_starve_a_slow_task() -> None:
    # A vote refit (seconds) of a task that serves 70% and knows 1,000 rows, against a
    # LoRA task (10 minutes a run) that serves nothing yet and has doubled its rows.
    vote = _traffic(
        "intents", recent=400, student_served=280, teacher_rows=1200, new_teacher_rows=200,
        has_run=True, run_minutes=0.3,
    )  # fmt: skip
    lora = _traffic(
        "extraction", recent=250, teacher_rows=400, new_teacher_rows=200, has_run=True,
        run_minutes=10.0,
    )  # fmt: skip
    assert choose([vote, lora], {}, every=200, min_rows=180).task == "intents"
    fed = replace(vote, student_served=360, teacher_rows=3000)  # serves 90%, knows 3,000
    assert choose([fed, lora], {}, every=200, min_rows=180).task == "extraction"


def test_a_task_no_run_could_match_stops_taking_the_cpu() -> None:
    # Free-form replies: its last run agreed with the teacher on 2% of the held-out rows.
    control = _traffic(
        "freeform", recent=100, teacher_rows=600, new_teacher_rows=200, has_run=True,
        run_minutes=5.0, last_agreement=0.02,
    )  # fmt: skip
    extraction = _traffic(
        "extraction", recent=250, student_served=0, teacher_rows=1200, new_teacher_rows=200,
        has_run=True, run_minutes=10.0, last_agreement=0.45,
    )  # fmt: skip
    assert control.reachable_share == MIN_REACHABLE
    assert extraction.reachable_share == 0.45
    assert _traffic("new").reachable_share == 1.0  # no run judged yet: all of it
    assert choose([control, extraction], {}, every=200, min_rows=180).task == "extraction"
    # Without that evidence the control would win: it is cheaper and knows fewer rows.
    blind = replace(control, last_agreement=None)
    assert choose([blind, extraction], {}, every=200, min_rows=180).task == "freeform"


def test_the_agreement_of_a_judged_run_is_read_from_its_metrics() -> None:
    metrics = {"candidate": {"agreement": 0.31}, "incumbent": {"agreement": 0.4}}
    assert best_agreement(metrics) == 0.4
    assert best_agreement('{"candidate": {"agreement": 0.5, "n": 38}}') == 0.5  # DuckDB text
    assert best_agreement({"candidate": {"agreement": None}}) is None
    assert best_agreement("not json") is None
    assert best_agreement(None) is None


def test_the_task_with_the_most_savings_per_cpu_minute_is_trained() -> None:
    # Per CPU minute: 0.05, 0.03, 0.2 and 0.033.
    busy_but_served = _traffic("served", recent=1000, student_served=950, run_minutes=10.0)
    cheap = _traffic("cheap", recent=300, cost_per_request=0.001, run_minutes=10.0)
    dear = _traffic("dear", recent=200, cost_per_request=0.01, run_minutes=10.0)
    slow = _traffic("slow", recent=400, cost_per_request=0.01, run_minutes=120.0)
    tasks = [busy_but_served, cheap, dear, slow]
    chosen = choose(tasks, {}, every=None, min_rows=50)
    assert chosen is not None and chosen.task == "dear"


def test_only_due_tasks_and_never_excluded_ones() -> None:
    first = _traffic("first", new_teacher_rows=60)  # a first run needs min_rows too
    again = _traffic("again", new_teacher_rows=25, has_run=True, recent=10)
    excluded = _traffic("secret", recent=10_000)
    overrides = {"secret": TaskOverride(exclude=True)}
    assert choose([first, again, excluded], overrides, every=20, min_rows=80).task == "again"
    assert choose([first, excluded], overrides, every=20, min_rows=80) is None
    assert choose([first, excluded], overrides, every=None, min_rows=80).task == "first"
    assert choose([excluded], overrides, every=None, min_rows=1) is None


def test_run_minutes_default_to_the_mean_of_known_runs() -> None:
    known = _traffic("known", recent=100, run_minutes=2.0)  # 100 * 0.01 / 2 = 0.5
    new = _traffic("new", recent=400)  # 400 * 0.01 / 2 (the known mean) = 2.0
    assert choose([known, new], {}, every=None, min_rows=1).task == "new"


def test_slots_route_by_task_and_follow_the_default_until_they_own_one() -> None:
    base = StudentVersion("student-base", threshold=0.5)
    active = ActiveStudents(base, per_task=True)
    assert active.for_task("a") is active.default and active.tasks() == {}
    follower = active.slot("a")
    assert follower.current == StudentVersion("student-base", threshold=0.5, task="a")
    active.put("b", StudentVersion("distill-r1", "r1", task="b"))
    assert active.current.version == "r1" and active.previous.task == "b"  # the main slot
    shared = StudentVersion("distill-r0", "r0", threshold=0.7)
    active.set_default(shared)
    assert active.for_task("a").current == StudentVersion("distill-r0", "r0", 0.7, task="a")
    assert active.for_task("b").current.version == "r1"  # its own: it does not follow
    assert active.in_use("distill-r1") and not active.in_use("distill-r9")
    assert active.for_task("c") is active.default


def test_scope_all_has_one_slot_and_too_little_traffic_needs_other_tasks() -> None:
    single = ActiveStudents.of(ActiveStudent(StudentVersion("s")))
    single.slot("a")
    assert single.for_task("a") is single.default  # scope all: the default serves all
    active = ActiveStudents(StudentVersion("s"), per_task=True)
    active.teacher_rows = {"a": 3}
    assert not active.too_little_traffic("a", 50)  # the only task: a cold start
    active.teacher_rows = {"a": 3, "b": 80}
    assert active.too_little_traffic("a", 50) and not active.too_little_traffic("b", 50)
    active.put("a", StudentVersion("distill-r1", "r1", task="a"))
    assert not active.too_little_traffic("a", 50)  # it has a version of its own


def test_task_traffic_reads_each_tasks_newest_judged_run_from_duckdb(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "log.duckdb"))
    migrate(conn)
    now = datetime(2026, 12, 3, 9, 0)
    runs = [  # (id, task, minutes ago, candidate agreement): the newest judged run counts
        ("r1", "freeform", 50, 0.3),
        ("r2", "freeform", 20, 0.02),
        ("r3", "intents", 10, 0.7),
    ]
    for run_id, task, ago, agreement in runs:
        started = now - timedelta(minutes=ago)
        conn.execute(
            "INSERT INTO runs (id, created_at, started_at, finished_at, status, metrics_json, "
            "task) VALUES (?, ?, ?, ?, 'rejected', ?, ?)",
            [run_id, started, started, started + timedelta(minutes=2),
             json.dumps({"candidate": {"agreement": agreement}}), task],
        )  # fmt: skip
    conn.execute(
        "INSERT INTO requests (id, created_at, route, task, teacher_text) VALUES "
        "('q1', ?, 'teacher', 'freeform', 'a reply'), ('q2', ?, 'teacher', 'intents', 'card')",
        [now, now],
    )
    traffic = {t.task: t for t in task_traffic(conn, now=now + timedelta(minutes=1))}
    assert traffic["freeform"].last_agreement == 0.02
    assert traffic["intents"].last_agreement == 0.7
    assert traffic["freeform"].run_minutes == 2.0
