"""One leader on a shared PostgreSQL log: two in-process proxies with the loop's fakes.

The first proxy takes the leader lock; a promotion it makes is served by the follower too
(it re-reads the shared `student_versions` table and loads the adapter on its own vLLM),
and so is its rollback; the follower refuses to start runs or roll back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.loop.conftest import LoopFactory, LoopHarness, loop_proxy  # noqa: F401 (fixture)

pytestmark = pytest.mark.postgres


def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _replica(
    factory: LoopFactory, pg_url: str, tmp_path: Path, name: str
) -> AbstractContextManager[LoopHarness]:
    # Own data directory (spill journal, runs); the log and the version table are shared.
    return factory(db=pg_url, data_dir=tmp_path / name, leader_poll_interval=0.2)


def test_promotion_by_the_leader_is_served_by_both(
    loop_proxy: LoopFactory,  # noqa: F811
    pg_url: str,
    tmp_path: Path,
) -> None:
    with (
        _replica(loop_proxy, pg_url, tmp_path, "a") as leader,
        _replica(loop_proxy, pg_url, tmp_path, "b") as follower,
    ):
        assert leader.app.state.leader.is_leader
        assert not follower.app.state.leader.is_leader
        leader.traffic(10)
        refused = follower.admin("POST", "/admin/runs", json={})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_leader"
        run = leader.wait_run(leader.start_run())
        assert run["status"] == "promoted", run["reason"]
        name = f"distill-{run['id']}"
        _until(lambda: follower.active.current.name == name)
        assert follower.vllm.loads[-1]["lora_name"] == name  # loaded on its own vLLM
        for proxy in (leader, follower):
            resp = proxy.chat(51, good=True)
            assert resp.headers["x-distill-route"] == "student"
            assert resp.headers["x-distill-student-version"] == run["id"]
        # A rollback by the leader is followed too (back to the base model).
        assert follower.admin("POST", "/admin/rollback").status_code == 409
        assert leader.admin("POST", "/admin/rollback").status_code == 200
        _until(lambda: follower.active.current.version == "base")
        assert follower.chat(52, good=True).headers["x-distill-route"] == "teacher"


def test_distill_leader_metric_names_one_replica(
    loop_proxy: LoopFactory,  # noqa: F811
    pg_url: str,
    tmp_path: Path,
) -> None:
    with (
        _replica(loop_proxy, pg_url, tmp_path, "a") as first,
        _replica(loop_proxy, pg_url, tmp_path, "b") as second,
    ):
        shown = [
            next(
                line
                for line in p.admin("GET", "/metrics").text.splitlines()
                if line.startswith("distill_leader ")
            )
            for p in (first, second)
        ]
        assert shown == ["distill_leader 1.0", "distill_leader 0.0"]
