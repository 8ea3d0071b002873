"""Calibration mode in the running server: cold start, promotion, logged pairs, closed sets."""

from __future__ import annotations

import json
import math

from tests.loop.conftest import LoopFactory


def _calibration(lh: object) -> dict[str, object]:
    resp = lh.admin("GET", "/admin/calibration")  # type: ignore[attr-defined]
    assert resp.status_code == 200
    return resp.json()  # type: ignore[no-any-return]


def test_cold_start_serves_nothing_and_logs_pairs(loop_proxy: LoopFactory) -> None:
    with loop_proxy(target_agreement=0.9, calibration_min_pairs=5, calibration_interval=0.2) as lh:
        responses = lh.traffic(6)
        assert {r.headers["x-distill-reason"] for r in responses} == {"uncalibrated"}
        rows = lh.h.rows()
        assert all(r["student_text"] == "maybe" and r["teacher_text"] for r in rows)
        # The base model's pairs all disagree: the target is out of reach, it stays off.
        lh.h.flush()
        evidence = lh.wait_for(
            lambda: (
                (e := _calibration(lh)["versions"]["base"]["evidence"]) and e["pairs"] == 6 and e
            ),
            timeout=5,
        )
        assert evidence["status"] == "target_not_reached"
        assert evidence["threshold"] is None and evidence["agreement"] == 0.0
        assert lh.active.current.threshold is None
        # Out of reach is said in words, with the best target the evidence supports.
        status = lh.admin("GET", "/admin/stats").json()["calibration"]
        assert status["status"] == "target_not_reached"
        assert "target 90% not reached on 6 pairs" in status["summary"]
        assert "best the evidence supports is 0.0% agreement" in status["summary"]


def test_cold_start_background_answers_are_bounded(loop_proxy: LoopFactory) -> None:
    with loop_proxy(target_agreement=0.9, student_background_max=0) as lh:
        responses = lh.traffic(3)
        assert {r.headers["x-distill-reason"] for r in responses} == {"uncalibrated"}
        rows = lh.h.rows()
        assert len(rows) == 3 and all(r["student_text"] is None for r in rows)
        assert all(r["teacher_text"] for r in rows)
        assert lh.vllm.chats == []
        metrics = lh.admin("GET", "/metrics").text
        assert (
            'distill_upstream_errors_total{kind="background_skipped",upstream="student"} 3.0'
            in metrics
        )


def test_promotion_calibrates_from_the_eval_split(loop_proxy: LoopFactory) -> None:
    with loop_proxy(target_agreement=0.7, calibration_min_pairs=5) as lh:
        lh.traffic(10)
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "promoted", run["reason"]
        calibration = run["metrics_json"]["calibration"]
        assert calibration["status"] == "calibrated"
        assert calibration["threshold"] == -0.01 and calibration["pairs_used"] == 10
        assert calibration["lower"] >= 0.7
        assert lh.active.current.threshold == -0.01
        report = _calibration(lh)
        assert report["mode"] == "calibration" and report["target_agreement"] == 0.7
        mine = report["versions"][run["id"]]
        assert mine["role"] == "current" and mine["threshold"] == -0.01
        assert mine["evidence"]["sources"] == {"eval": 10, "logged": 0}
        stored = lh.admin("GET", "/admin/students").json()["versions"][0]
        assert stored["active"] and stored["threshold"] == -0.01
        assert stored["calibration"]["status"] == "calibrated"
        resp = lh.chat(40, good=False)
        assert resp.headers["x-distill-route"] == "student"
        assert resp.json()["choices"][0]["message"]["content"] == "negative"
        # distill stats / the dashboard read the same block from /admin/stats.
        status = lh.admin("GET", "/admin/stats").json()["calibration"]
        assert status["mode"] == "calibration" and status["status"] == "calibrated"
        assert status["summary"].startswith("serving at confidence >= -0.01")
        assert "at least 70%" in status["guarantee"]


def test_promotion_calibrates_on_the_calibration_set_not_the_gate_rows(
    loop_proxy: LoopFactory,
) -> None:
    with loop_proxy(
        trainer=("--split-calibration",), target_agreement=0.7, calibration_min_pairs=5
    ) as lh:
        lh.traffic(20)
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "promoted", run["reason"]
        metrics = run["metrics_json"]
        assert metrics["candidate"]["n"] == 10  # the gate: the eval half
        assert metrics["calibration_set"]["n"] == 10  # the threshold: the other half
        assert metrics["calibration"]["sources"] == {"calibration": 10, "logged": 0}
        items = json.loads((lh.app.state.settings.data_dir / "runs" / run["id"] / "eval_items.json")
                           .read_text())  # fmt: skip
        assert len(items) == 10
        assert all(i["query"] and i["reference"] and i["answer"] is not None for i in items)


def test_logged_pairs_calibrate_a_version_the_eval_split_could_not(
    loop_proxy: LoopFactory,
) -> None:
    with loop_proxy(target_agreement=0.7, calibration_min_pairs=15, calibration_interval=0.2) as lh:
        lh.traffic(10)
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "promoted"
        assert run["metrics_json"]["calibration"]["status"] == "not_enough_pairs"
        assert lh.active.current.threshold is None
        # Uncalibrated: the teacher serves, the new adapter's answers are logged beside it.
        first = lh.traffic(5, start=100)
        assert {r.headers["x-distill-reason"] for r in first} == {"uncalibrated"}
        lh.h.flush()
        lh.wait_for(lambda: lh.active.current.threshold is not None, timeout=5)
        evidence = _calibration(lh)["versions"][run["id"]]["evidence"]
        assert evidence["sources"] == {"eval": 10, "logged": 5}
        assert lh.chat(200, good=True).headers["x-distill-route"] == "student"


def test_closed_set_adapter_is_served_and_scored_as_a_choice(loop_proxy: LoopFactory) -> None:
    with loop_proxy(
        trainer=("--closed-set", "negative,positive"), target_agreement=0.7, calibration_min_pairs=5
    ) as lh:
        lh.traffic(10)
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "promoted"
        current = lh.active.current
        assert current.closed_set == ("negative", "positive")
        assert current.scorer == "sequence_prob"
        assert math.isclose(current.threshold, math.exp(-0.01))
        # A closed-set task's run report reads the traffic per label (the teacher's here).
        weak = run["metrics_json"]["weak_spots"]
        assert weak["by"] == "label" and weak["rows"] == 10
        assert {g["name"]: g["requests"] for g in weak["groups"]} == {"positive": 5, "negative": 5}
        evals = [
            c
            for c in lh.vllm.chats
            if c["model"] == current.name and "Review" in c["messages"][-1]["content"]
        ]  # not the "does it answer" probe
        assert evals and all(
            c["structured_outputs"] == {"choice": ["negative", "positive"]} for c in evals
        )
        assert lh.chat(300, good=True).headers["x-distill-route"] == "student"
        students = lh.admin("GET", "/admin/students").json()
        assert students["current"]["closed_set"] == ["negative", "positive"]


def test_static_mode_reports_the_fixed_threshold(loop_proxy: LoopFactory) -> None:
    with loop_proxy(confidence_threshold=-0.7) as lh:
        report = _calibration(lh)
        assert report["mode"] == "static" and report["threshold"] == -0.7
        assert report["versions"]["base"]["evidence"] is None


def test_the_gate_and_calibration_report_gold_accuracy(loop_proxy: LoopFactory) -> None:
    with loop_proxy(target_agreement=0.7, calibration_min_pairs=5) as lh:
        responses = lh.traffic(10)
        ids = [r.headers["x-request-id"] for r in responses]
        # Users confirm one teacher answer and correct another (the teacher said "positive").
        for request_id, correction in ((ids[0], "positive"), (ids[2], "negative")):
            resp = lh.admin(
                "POST", "/v1/feedback", json={"request_id": request_id, "correction": correction}
            )
            assert resp.status_code == 200, resp.text
        lh.h.flush()
        run = lh.wait_run(lh.start_run())
        assert run["status"] == "promoted", run["reason"]
        gold = run["metrics_json"]["gold"]
        assert gold["rows"] == 2
        assert gold["teacher"]["accuracy"] == 0.5 and gold["teacher"]["n"] == 2
        # The adapter answers like the teacher: right where the teacher was, wrong elsewhere.
        assert gold["student"]["accuracy"] == 0.5
        assert gold["student"]["low"] < 0.5 < gold["student"]["high"]
        assert _calibration(lh)["versions"][run["id"]]["gold"] == gold
        # The run report also says where the serving student stood on the traffic so far.
        weak = run["metrics_json"]["weak_spots"]
        assert weak["rows"] == 10 and weak["by"] == "tag"
        assert weak["groups"][0]["requests"] == 10 and weak["groups"][0]["student_share"] == 0.0
