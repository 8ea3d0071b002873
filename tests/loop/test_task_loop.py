"""The loop per task (DISTILL_LOOP_SCOPE=task): two tasks through one proxy get their own
runs, versions, thresholds, routing and rollback; a promotion of one keeps the other's
adapter loaded; a small task stays on the teacher with its own reason; scope `all` keeps
one version for all traffic."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.loop.conftest import LoopFactory, LoopHarness

CALIBRATED = {"target_agreement": 0.7, "calibration_min_pairs": 5}


def _chat(lh: LoopHarness, task: str, i: int, good: bool = True) -> httpx.Response:
    return lh.chat(i, good=good, metadata={"distill_task": task})


def _traffic(lh: LoopHarness, task: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        _chat(lh, task, i, good=i % 2 == 0)


def _train(lh: LoopHarness, task: str | None = None) -> dict[str, Any]:
    lh.set_quality("good")
    return lh.wait_run(lh.start_run(**({"task": task} if task else {})))


def _tasks(lh: LoopHarness) -> dict[str, dict[str, Any]]:
    resp = lh.admin("GET", "/admin/tasks")
    assert resp.status_code == 200, resp.text
    return {t["task"]: t for t in resp.json()["tasks"]}


def test_two_tasks_get_their_own_versions_thresholds_and_routes(loop_proxy: LoopFactory) -> None:
    with loop_proxy(**CALIBRATED) as lh:
        _traffic(lh, "alpha", 10)
        _traffic(lh, "beta", 9, start=100)
        alpha = _train(lh, "alpha")
        assert alpha["status"] == "promoted", alpha["reason"]
        assert alpha["task"] == "alpha"
        # The run saw alpha's rows only (the fake trainer holds out every one it gets).
        assert alpha["metrics_json"]["candidate"]["n"] == 10
        slots = lh.active.tasks()
        assert slots["alpha"].current.version == alpha["id"]
        assert slots["alpha"].current.threshold == -0.01
        resp = _chat(lh, "alpha", 50)
        assert resp.headers["x-distill-route"] == "student"
        assert resp.headers["x-distill-student-version"] == alpha["id"]
        resp = _chat(lh, "beta", 150)
        assert resp.headers["x-distill-route"] == "teacher"
        assert resp.headers["x-distill-student-version"] == "base"
        beta = _train(lh, "beta")
        assert beta["status"] == "promoted", beta["reason"]
        assert beta["metrics_json"]["candidate"]["n"] == 10
        # Side by side: beta's promotion did not unload alpha's adapter.
        names = {f"distill-{alpha['id']}", f"distill-{beta['id']}"}
        assert set(lh.vllm.adapters) == names and lh.vllm.unloads == []
        for task, run in (("alpha", alpha), ("beta", beta)):
            resp = _chat(lh, task, 300)
            assert resp.headers["x-distill-route"] == "student"
            assert resp.headers["x-distill-student-version"] == run["id"]
            assert resp.headers["x-distill-task"] == task
            assert lh.vllm.chats[-1]["model"] == f"distill-{run['id']}"
        tasks = _tasks(lh)
        for task, run in (("alpha", alpha), ("beta", beta)):
            serving = tasks[task]["serving"]
            assert serving["version"] == run["id"] and serving["shared"] is False
            assert serving["threshold"] == -0.01 and serving["own_version"] is True
        students = lh.admin("GET", "/admin/students").json()
        active = {v["task"]: v["name"] for v in students["versions"] if v["active"]}
        assert active == {"alpha": f"distill-{alpha['id']}", "beta": f"distill-{beta['id']}"}
        assert students["current"]["version"] == beta["id"]  # the slot promoted last
        ready = lh.admin("GET", "/readyz").json()
        assert ready["student_version"] == beta["id"]
        assert ready["task_versions"] == {"alpha": alpha["id"], "beta": beta["id"]}
        assert set(lh.admin("GET", "/admin/calibration").json()["tasks"]) >= {"alpha", "beta"}
        metrics = lh.admin("GET", "/metrics").text
        assert f'distill_task_student_version_info{{task="alpha",version="{alpha["id"]}"}}' in (
            metrics
        )
        assert 'distill_task_confidence_threshold{task="beta"} -0.01' in metrics
        models = [m["id"] for m in lh.admin("GET", "/v1/models").json()["data"]]
        assert models[:1] == ["distill-student"] and names <= set(models)  # every task's


def test_rollback_and_restart_are_per_task(loop_proxy: LoopFactory) -> None:
    with loop_proxy(**CALIBRATED) as lh:
        _traffic(lh, "alpha", 10)
        _traffic(lh, "beta", 10, start=100)
        alpha, beta = _train(lh, "alpha"), _train(lh, "beta")
        assert (alpha["status"], beta["status"]) == ("promoted", "promoted")
        body = lh.admin("POST", "/admin/rollback", params={"task": "alpha"}).json()
        assert body["current"]["version"] == "base"
        assert body["rolled_back"]["version"] == alpha["id"]
        assert _chat(lh, "alpha", 40).headers["x-distill-student-version"] == "base"
        assert _chat(lh, "beta", 140).headers["x-distill-student-version"] == beta["id"]
        nothing = lh.admin("POST", "/admin/rollback", params={"task": "gamma"})
        assert nothing.status_code == 409
    with loop_proxy(**CALIBRATED) as lh:  # a restart: each task gets its own slot back
        slots = lh.active.tasks()
        assert slots["alpha"].current.version == "base"
        assert slots["alpha"].previous.version == alpha["id"]
        assert (slots["beta"].current.version, slots["beta"].previous.version) == (
            beta["id"],
            "base",
        )
        assert _chat(lh, "beta", 160).headers["x-distill-route"] == "student"
        assert _chat(lh, "alpha", 60).headers["x-distill-route"] == "teacher"


def test_promoting_one_task_again_keeps_the_other_tasks_adapter(loop_proxy: LoopFactory) -> None:
    with loop_proxy(promotion_margin=0.0) as lh:
        _traffic(lh, "alpha", 6)
        _traffic(lh, "beta", 6, start=100)
        beta = _train(lh, "beta")
        alphas = [_train(lh, "alpha") for _ in range(3)]
        assert [r["status"] for r in [beta, *alphas]] == ["promoted"] * 4
        names = [f"distill-{r['id']}" for r in alphas]
        # alpha keeps its current and previous; its oldest is unloaded; beta's stays.
        assert set(lh.vllm.adapters) == {f"distill-{beta['id']}", *names[1:]}
        assert lh.vllm.unloads == [names[0]]
        resp = _chat(lh, "beta", 200)
        assert resp.headers["x-distill-student-version"] == beta["id"]


def test_a_task_with_too_little_traffic_stays_on_the_teacher(loop_proxy: LoopFactory) -> None:
    with loop_proxy(train_min_rows=8, calibration_interval=0.2, **CALIBRATED) as lh:
        _traffic(lh, "alpha", 9)
        _traffic(lh, "beta", 2, start=100)
        lh.h.flush()
        lh.wait_for(lambda: len(lh.active.teacher_rows) == 2, timeout=5)
        small = _chat(lh, "beta", 150)
        assert small.headers["x-distill-route"] == "teacher"
        assert small.headers["x-distill-reason"] == "task_too_little_traffic"
        big = _chat(lh, "alpha", 50)  # enough answers for a run: merely not calibrated
        assert big.headers["x-distill-reason"] == "uncalibrated"
        rows = lh.wait_for(lambda: lh.h.rows("reason = 'task_too_little_traffic'"))
        assert len(rows) == 1 and rows[0]["task"] == "beta"
        assert rows[0]["student_text"] == "maybe"  # its pair is still logged
        serving = _tasks(lh)["beta"]["serving"]
        assert serving["too_little_traffic"] is True and serving["shared"] is False
        metrics = lh.admin("GET", "/metrics").text
        assert 'reason="task_too_little_traffic"' in metrics


def test_the_rows_trigger_trains_the_due_task_worth_most(loop_proxy: LoopFactory) -> None:
    with loop_proxy(train_every_rows=4, train_min_rows=4, train_rows_check_interval=0.1) as lh:
        _traffic(lh, "beta", 3, start=100)  # not due: 3 < 4
        _traffic(lh, "alpha", 5)
        runs = lh.wait_for(lambda: lh.admin("GET", "/admin/runs").json()["data"])
        assert (runs[0]["trigger"], runs[0]["task"]) == ("rows", "alpha")
        lh.wait_run(runs[0]["id"])
        time.sleep(0.4)  # beta is still not due; alpha has no new rows
        assert len(lh.admin("GET", "/admin/runs").json()["data"]) == 1


def test_a_manual_run_without_a_task_takes_the_busiest_task(loop_proxy: LoopFactory) -> None:
    with loop_proxy(tasks={"private": {"exclude": True}}) as lh:
        _traffic(lh, "alpha", 2)
        _traffic(lh, "beta", 5, start=100)
        _traffic(lh, "private", 8, start=200)  # the busiest, but never trained
        run = _train(lh)
        assert run["task"] == "beta" and run["status"] == "promoted"
        assert lh.admin("POST", "/admin/runs", json={"task": "Not A Task"}).status_code == 400
        excluded = lh.admin("POST", "/admin/runs", json={"task": "private"})
        assert excluded.status_code == 400 and "excluded" in excluded.text


def test_scope_all_keeps_one_version_for_all_traffic(loop_proxy: LoopFactory) -> None:
    with loop_proxy(loop_scope="all", **CALIBRATED) as lh:
        _traffic(lh, "alpha", 6)
        _traffic(lh, "beta", 6, start=100)
        run = _train(lh)
        assert run["status"] == "promoted" and run["task"] is None
        assert run["metrics_json"]["candidate"]["n"] == 12  # every task's rows
        assert lh.active.tasks() == {}
        for task in ("alpha", "beta"):
            resp = _chat(lh, task, 500)
            assert resp.headers["x-distill-student-version"] == run["id"]
        assert _tasks(lh)["alpha"]["serving"]["shared"] is True
        one = lh.admin("POST", "/admin/runs", json={"task": "alpha"})
        assert one.status_code == 400 and "DISTILL_LOOP_SCOPE=task" in one.text
