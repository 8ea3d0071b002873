"""``--feedback-compare RATE``: the learning phase a second time, in the same run, on a fresh
proxy (own log, own runs) whose users correct RATE of the teacher's answers; the report
then shows both arms side by side (`bench.banking77.feedback.write_side_by_side`).

Same traffic, same validation queries, same replay teacher; the arms run one after the
other, so a run takes about twice as long.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from bench.banking77.data import Example
from bench.banking77.driver import Driver, DriverConfig
from bench.banking77.feedback import feedback_summary
from bench.banking77.report_calibration import evidence_check, run_reports
from bench.common.console import say
from bench.harness.admin import AdminClient
from bench.harness.rounds import LoopConfig, learning_phase, teacher_spend_probe, validate
from bench.harness.settings import BenchSettings, proxy_env
from bench.harness.stack import Server, TeacherSpec, start_proxy, stop_server

ARM_DIR = "feedback-arm"


class Bench(Protocol):
    """What the arm needs of the run (`bench.banking77.run.Bench`, which calls the arm: a
    protocol here, so that this module does not import that one)."""

    s: BenchSettings
    raw: dict[str, Any]
    teacher: Server | None
    spec: TeacherSpec
    admin_key: str
    base_model: Path | None
    logs: Path
    labels: list[str]
    traffic: list[tuple[int, Example]]
    validation: list[Example]

    def checkpoint(self, segments: list[dict[str, Any]] | None = None) -> None: ...


def arm_evidence(work_dir: Path) -> dict[str, Any]:
    """The arm's own run reports and calibration evidence (not the main arm's)."""
    runs_dir = work_dir / "learning" / "data" / "runs"
    run_dirs = sorted(p for p in runs_dir.glob("*") if p.is_dir())
    return {"calibration_evidence": evidence_check(run_dirs), "run_reports": run_reports(run_dirs)}


async def run_feedback_arm(bench: Bench) -> None:
    """Fills ``bench.raw["feedback_arm"]`` like the main arm fills ``segments`` & co."""
    rate = bench.s.feedback_compare
    assert bench.teacher is not None and rate is not None
    s = replace(bench.s, work_dir=bench.s.work_dir / ARM_DIR, feedback_rate=rate)
    env = proxy_env(
        s, bench.teacher.v1, bench.spec.api_key, bench.admin_key, "learning", bench.base_model
    )
    say(f"feedback arm: a fresh learning proxy whose users correct {rate:.0%} of teacher answers")
    proxy = start_proxy("feedback-proxy", env, bench.logs, s.ready_timeout)
    cfg = DriverConfig(
        base_url=proxy.v1, api_key="bench-client", concurrency=s.concurrency,
        stream_fraction=s.stream_fraction, seed=s.seed, feedback_rate=rate,
    )  # fmt: skip
    driver = Driver(cfg, bench.labels)
    admin = AdminClient(proxy.root, bench.admin_key)
    loop = LoopConfig(
        s.retrain_every, s.max_rounds, s.run_start_timeout, s.run_timeout, s.ready_timeout
    )
    arm: dict[str, Any] = {"feedback_rate": rate}
    bench.raw["feedback_arm"] = arm
    teacher_root = bench.teacher.root

    def checkpoint(segments: list[dict[str, Any]]) -> None:
        arm["segments"] = segments
        bench.checkpoint()

    try:
        base = await validate(driver, bench.validation, 0)
        arm["base_validation"] = {"records": [r.to_dict() for r in base]}
        await learning_phase(
            driver, admin, bench.traffic, bench.validation, loop,
            spend=lambda: teacher_spend_probe(teacher_root), checkpoint=checkpoint,
        )  # fmt: skip
        arm["proxy_stats"] = await admin.stats()
        arm["feedback"] = feedback_summary({**bench.raw, **arm}, rate)
        arm.update(arm_evidence(s.work_dir))
    finally:
        await driver.aclose()
        await admin.aclose()
        stop_server(proxy)
