"""The Banking77 benchmark, one command:

    python -m bench.banking77.run [--quick] [--requests N] [--retrain-every K] ...

Phases (all on loopback, the harness's: `bench.harness.phases`): the replay teacher
starts; the all-teacher baseline sends the traffic straight to it; a static-threshold
proxy that never retrains serves a prefix of the traffic; then the learning proxy (real
vLLM student, real trainer) measures the base student on the validation split and serves
the traffic in rounds, re-distilling every K teacher-answered requests. Raw records go to
bench/banking77/work/<run>/raw.json, the report to bench/banking77/results/.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.banking77.config import parse_settings
from bench.banking77.driver import Driver, DriverConfig
from bench.banking77.feedback import feedback_summary, write_side_by_side
from bench.banking77.feedback_arm import run_feedback_arm
from bench.banking77.report import write_report
from bench.banking77.report_calibration import evidence_check, run_reports
from bench.banking77.stack import start_teacher
from bench.common.console import say
from bench.common.machine import machine_info
from bench.common.procs import ProcessFailed
from bench.harness.admin import AdminClient, AdminError
from bench.harness.checks import machinery_problems
from bench.harness.examples import round_robin, traffic_order
from bench.harness.phases import TEACHER_CONCURRENCY, all_teacher, learn
from bench.harness.rounds import LoopConfig, proxy_costs, teacher_spend_probe
from bench.harness.settings import BenchSettings, proxy_env
from bench.harness.stack import (
    Server,
    TeacherSpec,
    ensure_base_model,
    start_proxy,
    stop_server,
)
from bench.harness.stats import Prices
from bench.tasks import banking77


class Bench:
    """One benchmark run: owns the servers, the raw record and its checkpoints."""

    def __init__(self, s: BenchSettings) -> None:
        self.s = s
        self.logs = s.work_dir / "logs"
        self.labels = banking77.load_categories()
        split = banking77.load_split(seed=s.seed)
        self.traffic = list(enumerate(traffic_order(split.train, s.seed)[: s.requests]))
        self.validation = round_robin(split.validation, s.val_limit)
        self.spec = TeacherSpec(s.teacher_accuracy, s.teacher_latency_ms, s.price_in, s.price_out)
        self.admin_key = secrets.token_urlsafe(24)
        self.teacher: Server | None = None
        self.base_model: Path | None = None
        self.started = time.time()
        self.raw: dict[str, Any] = {
            "settings": s.public(),
            "prices": Prices(s.price_in, s.price_out, s.student_price, s.student_price).to_dict(),
            "machine": machine_info(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "validation_total": len(split.validation),
            "notes": [],
            "segments": [],
        }

    def checkpoint(self, segments: list[dict[str, Any]] | None = None) -> None:
        """Saves the raw record so far (a crash late in a long run keeps the early rounds)."""
        if segments is not None:
            self.raw["segments"] = segments
        self.raw["minutes"] = (time.time() - self.started) / 60
        (self.s.work_dir / "raw.json").write_text(json.dumps(self.raw, default=str))

    def _driver(self, base_url: str, api_key: str, concurrency: int) -> Driver:
        cfg = DriverConfig(
            base_url=base_url,
            api_key=api_key,
            concurrency=concurrency,
            stream_fraction=self.s.stream_fraction,
            seed=self.s.seed,
            feedback_rate=self.s.feedback_rate,
        )
        return Driver(cfg, self.labels)

    def _env(self, role: str) -> dict[str, str]:
        assert self.teacher is not None
        return proxy_env(
            self.s, self.teacher.v1, self.spec.api_key, self.admin_key, role, self.base_model
        )

    async def teacher_baseline(self) -> None:
        assert self.teacher is not None
        driver = self._driver(self.teacher.v1, self.spec.api_key, TEACHER_CONCURRENCY)
        self.raw["teacher_baseline"] = await all_teacher(driver, self.traffic)
        self.checkpoint()

    async def static_cascade(self) -> None:
        """A prefix of the traffic through a proxy that never retrains (static threshold)."""
        assert self.teacher is not None
        static_settings = replace(self.s, target_agreement=None)
        env = proxy_env(
            static_settings,
            self.teacher.v1,
            self.spec.api_key,
            self.admin_key,
            "static",
            self.base_model,
        )
        say("static cascade: starting a proxy that never retrains")
        proxy = start_proxy("static-proxy", env, self.logs, self.s.ready_timeout)
        driver = self._driver(proxy.v1, "bench-client", self.s.concurrency)
        admin = AdminClient(proxy.root, self.admin_key)
        try:
            before = await teacher_spend_probe(self.teacher.root)
            records = await driver.run(self.traffic[: self.s.static_requests], "static", 0)
            after = await teacher_spend_probe(self.teacher.root)
            costs = await proxy_costs(admin, len(records))  # a fresh log: only this traffic
        finally:
            await driver.aclose()
            await admin.aclose()
            stop_server(proxy)
        spend = after - before if after is not None and before is not None else None
        self.raw["static"] = {
            "records": [r.to_dict() for r in records],
            "teacher_spend_usd": spend,
            "proxy_cost": costs,
            "settings": {"scorer": self.s.scorer, "threshold": self.s.static_threshold},
        }
        teacher_calls = sum(1 for r in records if r.route == "teacher")
        say(f"static cascade: {len(records)} requests, {teacher_calls} to the teacher")
        self.checkpoint()

    async def learning(self) -> None:
        assert self.teacher is not None
        teacher_root = self.teacher.root
        say("learning proxy: starting (embedded vLLM unless --student-url)")
        proxy = start_proxy(
            "learning-proxy", self._env("learning"), self.logs, self.s.ready_timeout
        )
        driver = self._driver(proxy.v1, "bench-client", self.s.concurrency)
        admin = AdminClient(proxy.root, self.admin_key)
        loop = LoopConfig(
            self.s.retrain_every,
            self.s.max_rounds,
            self.s.run_start_timeout,
            self.s.run_timeout,
            self.s.ready_timeout,
            first_round_at=self.s.train_min_rows,
        )
        try:
            await learn(
                self.raw, driver, admin, self.traffic, self.validation, loop,
                teacher_root, self.checkpoint,
            )  # fmt: skip
            self.raw["feedback"] = feedback_summary(self.raw, self.s.feedback_rate)
            runs_dir = self.s.work_dir / "learning" / "data" / "runs"
            run_dirs = sorted(p for p in runs_dir.glob("*") if p.is_dir())
            self.raw["calibration_evidence"] = evidence_check(run_dirs)
            self.raw["run_reports"] = run_reports(run_dirs)
        finally:
            await driver.aclose()
            await admin.aclose()
            stop_server(proxy)

    async def run(self) -> dict[str, Any]:
        self.s.work_dir.mkdir(parents=True, exist_ok=True)
        if not self.s.student_url:
            self.base_model = ensure_base_model()
        self.teacher = start_teacher(self.spec, self.logs)
        try:
            await self.teacher_baseline()
            if self.s.static_requests > 0:
                await self.static_cascade()
            await self.learning()
            if self.s.feedback_compare is not None:
                await run_feedback_arm(self)
        finally:
            stop_server(self.teacher)
            self.checkpoint()
        return self.raw


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    bench = Bench(settings)
    print(f"[bench] work dir {settings.work_dir}", flush=True)
    try:
        raw = asyncio.run(bench.run())
    except KeyboardInterrupt:
        print(f"[bench] interrupted; partial record in {settings.work_dir / 'raw.json'}")
        return 130
    except (ProcessFailed, AdminError, OSError, subprocess.CalledProcessError) as exc:
        say(f"benchmark failed: {type(exc).__name__}: {exc}")
        bench.raw["notes"].append(f"run aborted: {type(exc).__name__}: {str(exc)[:300]}")
        bench.checkpoint()
        if "teacher_baseline" in bench.raw:
            # Never over the committed results: a failed run reports next to its raw record.
            write_report(bench.raw, settings.work_dir / "partial-report")
            say(f"partial report in {settings.work_dir / 'partial-report'}")
        return 1
    problems = machinery_problems(raw)
    raw["notes"].extend(f"machinery: {p}" for p in problems)
    summary = write_report(raw, settings.out_dir)
    if raw.get("feedback_arm"):
        print(write_side_by_side(raw, summary, settings.out_dir), end="")
    keys = (
        "requests",
        "teacher_accuracy",
        "student_only_accuracy",
        "served_accuracy",
        "teacher_call_fraction",
        "cost_ratio",
        "minutes",
    )
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    print(f"[bench] report in {settings.out_dir}")
    for problem in problems:
        say(f"machinery problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
