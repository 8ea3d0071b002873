"""Runs: one at a time, triggers, progress, failures that leave serving untouched."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import duckdb

from proxy.logstore.schema import migrate
from tests.loop.conftest import LoopFactory, trainer_cmd


def _runs(lh: object) -> list[dict[str, object]]:
    resp = lh.admin("GET", "/admin/runs")  # type: ignore[attr-defined]
    assert resp.status_code == 200
    return resp.json()["data"]  # type: ignore[no-any-return]


def test_one_run_at_a_time_and_the_coalesced_trigger_is_recorded(loop_proxy: LoopFactory) -> None:
    with loop_proxy(trainer=("--sleep", "0.5")) as lh:
        lh.traffic(6)
        run_id = lh.start_run()
        second = lh.admin("POST", "/admin/runs")
        assert second.status_code == 409
        error = second.json()["error"]
        assert error["code"] == "run_in_progress" and error["run_id"] == run_id
        lh.wait_for(lambda: (lh.run(run_id).get("progress") or {}).get("max_steps"))
        listed = lh.admin("GET", "/admin/runs").json()
        assert listed["running"] == run_id
        running = next(r for r in listed["data"] if r["id"] == run_id)
        assert running["status"] == "running" and running["pid"] > 0
        assert running["progress"]["max_steps"] == 2  # progress.json of the trainer
        skipped = [r for r in listed["data"] if r["status"] == "skipped"]
        assert len(skipped) == 1
        assert skipped[0]["trigger"] == "manual" and run_id in skipped[0]["reason"]
        done = lh.wait_run(run_id)
        assert done["status"] == "promoted"
        assert len([r for r in _runs(lh) if r["status"] not in ("skipped",)]) == 1


def test_the_trainer_gets_snapshot_config_and_serving_context(
    loop_proxy: LoopFactory, tmp_path: Path
) -> None:
    args_file = tmp_path / "args.json"
    with loop_proxy(
        trainer=("--args-file", str(args_file)), train_epochs=1.0, student_base_model=None
    ) as lh:
        lh.traffic(4)
        run_id = lh.wait_run(lh.start_run(since="1d"))["id"]
        argv = json.loads(args_file.read_text())
        value = {
            a: argv[i + 1] for i, a in enumerate(argv) if a.startswith("--") and i + 1 < len(argv)
        }
        run_dir = Path(value["--run-dir"])
        assert run_dir.name == run_id and value["--run-id"] == run_id
        snapshot = (
            duckdb.connect()
            .execute("SELECT count(*) FROM read_parquet(?)", [value["--snapshot"]])
            .fetchone()
        )
        assert snapshot == (4,)
        config = json.loads(Path(value["--config-json"]).read_text())
        assert config["epochs"] == 1.0
        # the promotion gate measures the incumbent: the trainer does not
        assert config["eval_incumbent"] is False
        assert value["--eval-url"] == "http://student.test/v1"
        assert value["--eval-model"] == "student-base"
        assert "--incumbent-adapter" not in argv  # the base model serves: no adapter yet


def test_crashed_run_is_failed_with_its_error_and_serving_is_untouched(
    loop_proxy: LoopFactory,
) -> None:
    with loop_proxy(trainer=("--mode", "crash")) as lh:
        lh.traffic(4)
        before = lh.active.current
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "failed"
        assert "exit code 1" in run["reason"] and "fake trainer blew up" in run["reason"]
        assert lh.active.current == before
        assert lh.vllm.loads == []
        resp = lh.chat(100, good=True)
        assert resp.headers["x-distill-student-version"] == "base"


def test_killed_run_is_failed_and_serving_is_untouched(loop_proxy: LoopFactory) -> None:
    with loop_proxy(trainer=("--mode", "hang")) as lh:
        lh.traffic(4)
        run_id = lh.start_run()
        pid = lh.wait_for(lambda: lh.run(run_id).get("pid"))
        os.kill(pid, signal.SIGKILL)
        run = lh.wait_run(run_id)
        assert run["status"] == "failed" and "SIGKILL" in run["reason"]
        assert lh.active.current.version == "base"
        lh.chat(101, good=False)
        # The next trigger is free to run.
        assert lh.admin("POST", "/admin/runs").status_code == 202


def test_cancel_and_timeout_kill_the_trainer(loop_proxy: LoopFactory) -> None:
    with loop_proxy(trainer=("--mode", "hang"), train_timeout=1.0) as lh:
        lh.traffic(2)
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "failed" and "timed out after 1 s" in run["reason"]
        run_id = lh.start_run()
        pid = lh.wait_for(lambda: lh.run(run_id).get("pid"))
        assert lh.admin("POST", f"/admin/runs/{run_id}/cancel").status_code == 202
        run = lh.wait_run(run_id)
        assert run["status"] == "failed" and "cancelled by the admin" in run["reason"]
        assert not _alive(pid)
        assert lh.admin("POST", "/admin/runs/nope/cancel").status_code == 404


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state says it is gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def test_runs_left_running_by_a_dead_server_are_failed_at_startup(
    loop_proxy: LoopFactory, tmp_path: Path
) -> None:
    with duckdb.connect(str(tmp_path / "distill.duckdb")) as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO runs (id, created_at, status, trigger, pid) "
            "VALUES ('old-run', now()::TIMESTAMP, 'running', 'schedule', 999999)"
        )
    with loop_proxy() as lh:
        run = lh.run("old-run")
        assert run["status"] == "failed"
        assert "server stopped" in run["reason"] and run["finished_at"]


def test_rows_trigger_fires_after_enough_teacher_answers(loop_proxy: LoopFactory) -> None:
    with loop_proxy(train_every_rows=3, train_min_rows=2, train_rows_check_interval=0.1) as lh:
        lh.traffic(2)
        lh.h.flush()
        time.sleep(0.4)  # several checks happen; 2 < 3 rows
        assert _runs(lh) == []
        lh.traffic(1, start=2)
        runs = lh.wait_for(lambda: _runs(lh))
        assert runs[0]["trigger"] == "rows"
        lh.wait_run(runs[0]["id"])


def test_the_first_rows_run_also_waits_for_train_min_rows(loop_proxy: LoopFactory) -> None:
    # A first run on fewer rows than train_min_rows would only fail for want of data.
    with loop_proxy(train_every_rows=2, train_min_rows=4, train_rows_check_interval=0.1) as lh:
        lh.traffic(3)
        lh.h.flush()
        time.sleep(0.4)  # 3 >= every, but < train_min_rows
        assert _runs(lh) == []
        lh.traffic(1, start=3)
        runs = lh.wait_for(lambda: _runs(lh))
        assert runs[0]["trigger"] == "rows"
        lh.wait_run(runs[0]["id"])


def test_schedule_trigger_starts_runs(loop_proxy: LoopFactory) -> None:
    with loop_proxy(train_schedule="1s", trainer=("--quality", "bad")) as lh:
        lh.traffic(2)
        runs = lh.wait_for(lambda: _runs(lh), timeout=5)
        assert runs[0]["trigger"] == "schedule"


def test_bad_config_override_is_a_400(loop_proxy: LoopFactory) -> None:
    with loop_proxy() as lh:
        resp = lh.admin("POST", "/admin/runs", json={"config": {"epochs": -1}})
        assert resp.status_code == 400 and "epochs" in resp.json()["error"]["message"]
        resp = lh.admin("POST", "/admin/runs", json={"since": "yesterday-ish"})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == "since"
        assert _runs(lh) == []


def test_admin_endpoints_need_the_admin_key(loop_proxy: LoopFactory) -> None:
    with loop_proxy(admin_key="adm-secret", trainer_command=trainer_cmd()) as lh:
        assert lh.admin("GET", "/admin/runs").status_code == 401
        assert (
            lh.admin(
                "POST", "/admin/rollback", headers={"authorization": "Bearer wrong"}
            ).status_code
            == 403
        )
        ok = lh.admin("GET", "/admin/students", headers={"authorization": "Bearer adm-secret"})
        assert ok.status_code == 200 and ok.json()["current"]["version"] == "base"
