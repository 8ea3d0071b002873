"""The per-task loop on a shared PostgreSQL log: per-task runs and versions round-trip
(`runs.task`, `student_versions.task`, the active version per task), the choice of the
task reads the log there, a restart restores each task's slot, and a follower serves a
task that has no version of its own at that task's threshold, not at the one for all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.loop.conftest import LoopFactory, loop_proxy  # noqa: F401 (fixture)
from tests.loop.fake_stack import LABELS, FakeVLLM, oracle

pytestmark = pytest.mark.postgres


def _traffic(lh: object, task: str, n: int, start: int) -> None:
    for i in range(start, start + n):
        lh.chat(i, good=i % 2 == 0, metadata={"distill_task": task})  # type: ignore[attr-defined]


def test_per_task_versions_and_runs_round_trip(
    loop_proxy: LoopFactory,  # noqa: F811
    pg_url: str,
    tmp_path: Path,
) -> None:
    settings = {"db": pg_url, "data_dir": tmp_path / "data"}
    with loop_proxy(**settings) as lh:
        _traffic(lh, "alpha", 6, 0)
        _traffic(lh, "beta", 3, 100)
        lh.set_quality("good")
        alpha = lh.wait_run(lh.start_run())  # no task named: the loop picks the busiest
        beta = lh.wait_run(lh.start_run(task="beta"))
        assert (alpha["task"], alpha["status"]) == ("alpha", "promoted")
        assert (beta["task"], beta["status"]) == ("beta", "promoted")
        runs = lh.admin("GET", "/admin/runs").json()["data"]
        assert [(r["id"], r["task"]) for r in runs] == [
            (beta["id"], "beta"),
            (alpha["id"], "alpha"),
        ]
        rolled = lh.admin("POST", "/admin/rollback", params={"task": "beta"}).json()
        assert rolled["current"]["version"] == "base"
        versions = lh.admin("GET", "/admin/students").json()["versions"]
        assert {(v["task"], v["name"], v["active"]) for v in versions} == {
            (None, "student-base", True),  # the shared log's row for all traffic (the leader's)
            ("alpha", f"distill-{alpha['id']}", True),
            ("beta", f"distill-{beta['id']}", False),
        }
    with loop_proxy(**settings) as lh:
        slots = lh.active.tasks()
        assert slots["alpha"].current.version == alpha["id"]
        assert (slots["beta"].current.version, slots["beta"].previous.version) == (
            "base",
            beta["id"],
        )
        headers = lh.chat(200, good=True, metadata={"distill_task": "alpha"}).headers
        assert headers["x-distill-student-version"] == alpha["id"]
        assert headers["x-distill-route"] == "student"


def _base_by_task(body: dict[str, Any]) -> tuple[str, float] | None:
    """The base model is right on task alpha and confidently wrong on beta: calibrated on
    all traffic it serves neither, on alpha's pairs alone it serves alpha."""
    task = (body.get("metadata") or {}).get("distill_task")
    right = oracle(body)
    if task == "alpha":
        return right, -0.01
    return LABELS[1 - LABELS.index(right)], -0.01


def test_a_follower_serves_each_following_task_at_its_own_threshold(
    loop_proxy: LoopFactory,  # noqa: F811
    pg_url: str,
    tmp_path: Path,
) -> None:
    settings: dict[str, Any] = {
        "db": pg_url, "target_agreement": 0.7, "calibration_min_pairs": 5,
        "calibration_interval": 0.2, "train_min_rows": 5, "shadow_rate": 0.0,
        "leader_poll_interval": 0.2,
    }  # fmt: skip
    with (
        loop_proxy(FakeVLLM(base_answer=_base_by_task), data_dir=tmp_path / "a", **settings) as a,
        loop_proxy(FakeVLLM(base_answer=_base_by_task), data_dir=tmp_path / "b", **settings) as b,
    ):
        assert a.app.state.leader.is_leader and not b.app.state.leader.is_leader
        # beta's pairs first: a calibration pass that sees alpha's has seen beta's, so the
        # all-traffic threshold is never fitted on alpha's pairs alone.
        _traffic(a, "beta", 12, 100)
        _traffic(a, "alpha", 12, 0)
        alpha = a.wait_for(lambda: a.active.tasks().get("alpha"))
        a.wait_for(lambda: alpha.current.threshold is not None)
        beta = a.wait_for(lambda: a.active.tasks().get("beta"))
        assert beta.current.threshold is None
        # All traffic, half of it wrong: shut (a pass under load may still be on its way).
        a.wait_for(lambda: a.active.default.current.threshold is None)
        # The follower learns alpha's threshold from the shared log, never beta's.
        b.wait_for(lambda: "alpha" in b.active.tasks())
        followed = b.active.tasks()["alpha"].current
        assert (followed.name, followed.threshold) == ("student-base", alpha.current.threshold)
        assert b.active.for_task("beta").current.threshold is None
        for proxy in (a, b):
            served = proxy.chat(500, good=True, metadata={"distill_task": "alpha"}).headers
            assert (served["x-distill-route"], served["x-distill-student-version"]) == (
                "student",
                "base",
            )
            other = proxy.chat(600, good=True, metadata={"distill_task": "beta"}).headers
            assert other["x-distill-route"] == "teacher"
