"""The per-task loop on a shared PostgreSQL log: per-task runs and versions round-trip
(`runs.task`, `student_versions.task`, the active version per task), the choice of the
task reads the log there, and a restart restores each task's slot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loop.conftest import LoopFactory, loop_proxy  # noqa: F401 (fixture)

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
