"""The learning loop's segmentation: K teacher answers, then a run, then validation."""

from __future__ import annotations

from typing import Any

import pytest

from bench.banking77.data import Example
from bench.banking77.driver import Driver, DriverConfig, RequestRecord
from bench.harness.admin import AdminClient, RunInfo, _as_runs
from bench.harness.due import DueRule
from bench.harness.rounds import FORCE_STUDENT, VALIDATION_BODY, LoopConfig, learning_phase


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


class ScriptedDriver(Driver):
    """The real dispatch loop with canned answers: even indices fall back to the teacher."""

    def __init__(self) -> None:
        super().__init__(DriverConfig(base_url="http://127.0.0.1:9/v1", concurrency=3), [])
        self.calls: list[dict[str, Any]] = []

    async def one(
        self,
        index: int,
        example: Example,
        stream: bool,
        phase: str,
        round_no: int,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> RequestRecord:
        self.calls.append(
            {"index": index, "phase": phase, "headers": headers, "extra_body": extra_body}
        )
        route = "student" if phase == "validation" or index % 2 else "teacher"
        return RequestRecord(
            phase,
            round_no,
            index,
            example.label,
            stream,
            200,
            answer=example.label,
            correct=True,
            route=route,
        )


class FakeAdmin(AdminClient):
    """Runs appear only when triggered and finish at once."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "admin")
        self.listed: list[RunInfo] = []
        self.triggered = 0

    async def runs(self) -> list[RunInfo]:
        return list(self.listed)

    async def trigger(self) -> RunInfo | None:
        self.triggered += 1
        run = RunInfo(f"run-{self.triggered}", "promoted", {"duration_s": 12.5})
        self.listed.append(run)
        return RunInfo(run.id, "queued", {})

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        return 200, {"student_version": f"v{self.triggered}"}

    async def stats(self) -> dict[str, Any]:
        return {"requests": 1}


async def _spend() -> float | None:
    return 1.0


@pytest.mark.anyio
async def test_rounds_split_on_teacher_answers() -> None:
    driver, admin = ScriptedDriver(), FakeAdmin()
    traffic = [(i, Example(f"q{i}", "card_arrival")) for i in range(30)]
    validation = [Example(f"v{i}", "card_arrival") for i in range(4)]
    cfg = LoopConfig(
        retrain_every=5,
        max_rounds=2,
        run_start_timeout=0.0,
        run_timeout=5.0,
        ready_timeout=5.0,
        log_flush_wait=0.0,
    )
    saved: list[int] = []
    segments = await learning_phase(
        driver, admin, traffic, validation, cfg, _spend, lambda segs: saved.append(len(segs))
    )
    await driver.aclose()
    await admin.aclose()
    assert [s["round"] for s in segments] == [1, 2, 3]
    first, second, last = segments
    teacher_first = sum(1 for r in first["records"] if r["route"] == "teacher")
    # In-flight requests finish after the stop condition: at most concurrency-1 extra.
    assert 5 <= teacher_first <= 5 + 2
    assert first["trigger"] == "bench" and first["run"]["status"] == "promoted"
    assert first["training_seconds"] == 12.5
    assert first["student_version"] == "v1"
    assert len(first["validation"]["records"]) == 4
    assert "run" not in last and "validation" not in last  # max_rounds reached
    assert sum(len(s["records"]) for s in segments) == 30
    assert sorted(r["index"] for s in segments for r in s["records"]) == list(range(30))
    assert admin.triggered == 2
    assert saved == [1, 2, 3]
    assert first["teacher_spend_usd"] == 0.0
    checks = [c for c in driver.calls if c["phase"] == "validation"]
    assert len(checks) == 8
    assert all(c["headers"] == FORCE_STUDENT and c["extra_body"] == VALIDATION_BODY for c in checks)


@pytest.mark.anyio
async def test_first_round_waits_for_the_proxys_minimum_rows() -> None:
    """A first segment shorter than train_min_rows would wait for a run the scheduler never
    starts, then force one that fails for want of rows."""
    driver, admin = ScriptedDriver(), FakeAdmin()
    traffic = [(i, Example(f"q{i}", "card_arrival")) for i in range(40)]
    cfg = LoopConfig(
        retrain_every=3, max_rounds=2, run_start_timeout=0.0, run_timeout=5.0,
        ready_timeout=5.0, log_flush_wait=0.0, first_round_at=8,
    )  # fmt: skip
    segments = await learning_phase(driver, admin, traffic, [], cfg, _spend, lambda _: None)
    await driver.aclose()
    await admin.aclose()
    teacher = [sum(1 for r in s["records"] if r["route"] == "teacher") for s in segments]
    assert 8 <= teacher[0] <= 8 + 2
    assert 3 <= teacher[1] <= 3 + 2


def test_run_list_shapes() -> None:
    assert _as_runs({"runs": [{"id": 3, "status": "running"}]})[0].id == "3"
    assert _as_runs([{"run_id": "a", "status": "Succeeded"}])[0].finished
    assert not _as_runs([{"id": "a", "status": "training"}])[0].finished


def _answered(task: str, n: int, route: str = "teacher") -> list[RequestRecord]:
    return [
        RequestRecord("learning", 1, i, "x", False, 200, route=route, task_seen=task)
        for i in range(n)
    ]


def test_a_round_is_due_per_task_when_one_task_has_its_rows() -> None:
    """The proxy's per-task loop trains a task once it has `every` new teacher answers (its
    first run: train_min_rows): counting all tasks together would end segments where no
    task is due."""
    rule = DueRule(every=3, first=5, per_task=True)
    mixed = _answered("a", 4) + _answered("b", 4) + _answered("a", 9, route="student")
    assert not rule.is_due(mixed, 1)  # 8 teacher answers, but no task has 5
    assert rule.is_due([*mixed, *_answered("a", 1)], 1)
    rule.add([*mixed, *_answered("a", 1)])
    rule.ran("a")  # a's run was judged: a counts from 0, and needs only `every` now
    assert not rule.is_due(_answered("a", 2), 2)
    assert rule.is_due(_answered("a", 3), 2)
    assert rule.is_due(_answered("b", 1), 2)  # b: 4 before + 1 reaches its first 5
    overall = DueRule(every=3, first=5)
    assert overall.is_due(_answered("a", 2) + _answered("b", 3), 1)
    assert not overall.is_due(_answered("a", 2), 2) and overall.is_due(_answered("b", 3), 2)
