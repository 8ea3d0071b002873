"""Promotion through the (fake) vLLM's LoRA API: the gate, the atomic swap, rollback, restore."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from proxy.loop.promotion import gate
from tests.loop.conftest import LoopFactory, LoopHarness
from tests.loop.fake_stack import FakeVLLM, review


def _promote(lh: LoopHarness, quality: str = "good") -> dict[str, object]:
    lh.set_quality(quality)
    return lh.wait_run(lh.start_run())


def test_gate_rule() -> None:
    assert gate(0.8, 0.5, 0.02)[0]
    ok, reason = gate(0.51, 0.5, 0.02)
    assert not ok and "0.510 < incumbent 0.500 + margin 0.020" in reason
    ok, reason = gate(0.9, 0.5, 0.0, regression=(7, 9))
    assert not ok and "regression set: 7 < 9" in reason
    assert gate(0.5, 0.5, 0.0, regression=(9, 9))[0]


def test_better_candidate_is_promoted_under_a_new_name(loop_proxy: LoopFactory) -> None:
    with loop_proxy() as lh:
        lh.traffic(10)
        assert lh.chat(50, good=True).headers["x-distill-route"] == "teacher"  # base unsure
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "promoted", run["reason"]
        name = f"distill-{run['id']}"
        assert lh.vllm.loads[0]["lora_name"] == name
        assert Path(lh.vllm.loads[0]["lora_path"]).is_absolute()
        metrics = run["metrics_json"]
        assert metrics["candidate"]["agreement"] == 1.0 and metrics["incumbent"]["agreement"] == 0
        assert metrics["candidate"]["n"] == 11  # every teacher-answered row of the fake split
        current = lh.active.current
        assert (current.name, current.version) == (name, run["id"])
        resp = lh.chat(51, good=True)
        assert resp.headers["x-distill-route"] == "student"
        assert resp.headers["x-distill-student-version"] == run["id"]
        assert lh.vllm.chats[-1]["model"] == name
        students = lh.admin("GET", "/admin/students").json()
        assert students["current"]["name"] == name
        assert students["previous"]["version"] == "base"
        active_rows = [v for v in students["versions"] if v["active"]]
        assert [v["name"] for v in active_rows] == [name]
        promotion = json.loads((Path(run["adapter_path"]).parent / "promotion.json").read_text())
        assert promotion["promoted"] is True


def test_worse_candidate_is_rejected_unloaded_and_kept_on_disk(loop_proxy: LoopFactory) -> None:
    with loop_proxy() as lh:
        lh.traffic(10)
        first = _promote(lh, "good")
        second = _promote(lh, "bad")
        assert second["status"] == "rejected"
        assert "candidate agreement 0.000 < incumbent 1.000" in second["reason"]
        rejected = f"distill-{second['id']}"
        assert rejected in lh.vllm.unloads and rejected not in lh.vllm.adapters
        assert Path(second["adapter_path"]).is_dir()
        assert lh.active.current.version == first["id"]
        assert lh.vllm.adapters.keys() == {f"distill-{first['id']}"}


def test_candidate_that_vllm_cannot_load_fails_the_run(loop_proxy: LoopFactory) -> None:
    vllm = FakeVLLM(refuse_loads=True)
    with loop_proxy(vllm=vllm) as lh:
        lh.traffic(4)
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "failed" and "LoraError" in run["reason"]
        assert "HTTP 500" in run["reason"]
        assert lh.active.current.version == "base"


def test_regression_set_can_veto(loop_proxy: LoopFactory, tmp_path: Path) -> None:
    items = [{"messages": review(900 + i, good=True), "expected": "maybe"} for i in range(3)]
    path = tmp_path / "regression.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n")
    with loop_proxy(regression_set=path) as lh:
        lh.traffic(6)
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "rejected"
        assert "regression set: 0 < 3" in run["reason"]
        assert run["metrics_json"]["regression"]["incumbent"]["agreed"] == 3


def test_in_flight_request_finishes_on_the_old_version(loop_proxy: LoopFactory) -> None:
    vllm = FakeVLLM(hold=threading.Event())
    with loop_proxy(vllm=vllm) as lh:
        lh.traffic(6)
        result: dict[str, object] = {}

        def slow() -> None:
            body = {
                "model": "student-base",
                "temperature": 0,
                "messages": [{"role": "user", "content": "HOLD: the film was good"}],
                "metadata": {},
            }
            result["resp"] = lh.http.post(
                "/v1/chat/completions", json=body, headers={"x-distill-route": "student"}
            )

        thread = threading.Thread(target=slow)
        thread.start()
        lh.wait_for(lambda: any("HOLD" in json.dumps(c["messages"]) for c in vllm.chats))
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "promoted"
        assert vllm.hold is not None
        vllm.hold.set()
        thread.join(10)
        resp = result["resp"]
        assert resp.headers["x-distill-student-version"] == "base"  # type: ignore[attr-defined]
        held = [c for c in vllm.chats if "HOLD" in json.dumps(c["messages"])]
        assert held[0]["model"] == "student-base"
        row = lh.h.rows("request_json::VARCHAR LIKE '%HOLD%'")[0]
        assert (row["student_version"], row["student_model"]) == ("base", "student-base")
        assert lh.chat(60, good=True).headers["x-distill-student-version"] == run["id"]


def test_rollback_returns_to_the_previous_version(loop_proxy: LoopFactory) -> None:
    with loop_proxy(promotion_margin=0.0) as lh:
        assert lh.admin("POST", "/admin/rollback").status_code == 409
        lh.traffic(6)
        first = _promote(lh, "good")
        lh.traffic(4, start=20)
        third = _promote(lh, "good")  # ties the incumbent: enough with a zero margin
        assert third["status"] == "promoted"
        assert lh.vllm.adapters.keys() == {f"distill-{first['id']}", f"distill-{third['id']}"}
        resp = lh.admin("POST", "/admin/rollback")
        assert resp.status_code == 200
        body = resp.json()
        assert body["current"]["version"] == first["id"]
        assert body["rolled_back"]["version"] == third["id"]
        assert lh.active.current.version == first["id"]
        assert lh.chat(70, good=True).headers["x-distill-student-version"] == first["id"]
        students = lh.admin("GET", "/admin/students").json()
        assert [v["name"] for v in students["versions"] if v["active"]] == [
            f"distill-{first['id']}"
        ]
        # Rolling back again toggles to the version just left (still loaded).
        assert lh.admin("POST", "/admin/rollback").json()["current"]["version"] == third["id"]


def test_rollback_to_the_base_model(loop_proxy: LoopFactory) -> None:
    with loop_proxy() as lh:
        lh.traffic(6)
        run = _promote(lh, "good")
        body = lh.admin("POST", "/admin/rollback").json()
        assert body["current"] == {**body["current"], "name": "student-base", "version": "base"}
        assert body["rolled_back"]["version"] == run["id"]
        assert lh.chat(80, good=True).headers["x-distill-route"] == "teacher"


def test_active_version_survives_a_server_restart(loop_proxy: LoopFactory) -> None:
    with loop_proxy() as lh:
        lh.traffic(6)
        run = _promote(lh, "good")
        name = f"distill-{run['id']}"
    fresh = FakeVLLM()  # the external vLLM restarted too: it knows no adapter
    with loop_proxy(vllm=fresh) as lh:
        assert lh.active.current.version == run["id"]
        assert lh.active.previous.version == "base"
        assert name in fresh.adapters
        assert lh.chat(90, good=True).headers["x-distill-route"] == "student"
        assert lh.admin("POST", "/admin/rollback").json()["current"]["version"] == "base"
    with loop_proxy(vllm=FakeVLLM()) as lh:
        assert lh.active.current.version == "base"  # the rollback was persisted too


def test_adapter_is_reloaded_when_an_external_vllm_restarts(loop_proxy: LoopFactory) -> None:
    with loop_proxy() as lh:
        lh.traffic(6)
        run = _promote(lh, "good")
        name = f"distill-{run['id']}"
        loads = len(lh.vllm.loads)
        lh.vllm.restart()
        started = time.monotonic()
        lh.wait_for(lambda: name in lh.vllm.adapters, timeout=15)
        assert len(lh.vllm.loads) == loads + 1
        assert time.monotonic() - started < 10


def test_only_the_current_and_previous_adapters_stay_loaded(loop_proxy: LoopFactory) -> None:
    with loop_proxy(promotion_margin=0.0) as lh:
        lh.traffic(6)
        runs = [_promote(lh, "good") for _ in range(3)]
        assert [r["status"] for r in runs] == ["promoted"] * 3
        names = [f"distill-{r['id']}" for r in runs]
        assert lh.vllm.adapters.keys() == set(names[1:])
        assert names[0] in lh.vllm.unloads
        assert Path(runs[0]["adapter_path"]).is_dir()  # unloaded, not deleted
