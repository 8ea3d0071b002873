"""The mixed-traffic benchmark, one command:

    python -m bench.mixed.run [--quick] [--requests N] [--share TASK=S] [--name-tasks] ...

Banking77 intents, CLINC150 intents with out-of-scope queries, SNIPS extraction to JSON
and free-form replies (40/25/25/10 % of 4,000 requests by default), shuffled with a seed
and sent through one base URL, each with its own task's prompt and no task name (unless
``--name-tasks``). Phases (the harness's): one replay teacher answers for every task; the
all-teacher baseline; then the learning proxy measures the base student on each task's
validation queries and serves the traffic in rounds. Raw records go to
bench/mixed/work/<run>/raw.json, the report (per task and overall) to bench/mixed/results/.
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

from bench.common.console import say
from bench.common.machine import machine_info
from bench.common.procs import ProcessFailed
from bench.harness.admin import AdminClient, AdminError
from bench.harness.checks import machinery_problems
from bench.harness.driver import Driver, DriverConfig
from bench.harness.examples import Example, round_robin, traffic_order
from bench.harness.phases import TEACHER_CONCURRENCY, all_teacher, learn
from bench.harness.rounds import LoopConfig
from bench.harness.settings import proxy_env
from bench.harness.stack import (
    Server,
    TeacherSpec,
    ensure_base_model,
    start_proxy,
    start_replay_teacher,
    stop_server,
)
from bench.harness.stats import Prices
from bench.harness.traffic import mixed_traffic
from bench.mixed.config import MixedSettings, build_tasks, parse_settings
from bench.mixed.report import write_report

TEACHER_MODULE = "bench.mixed.replay_teacher"


class MixedBench:
    """One mixed run: the tasks, their traffic, the servers and the raw record."""

    def __init__(self, m: MixedSettings) -> None:
        self.m, s = m, m.bench
        self.logs = s.work_dir / "logs"
        self.tasks = build_tasks(list(m.shares))
        splits = {name: task.split(s.seed) for name, task in self.tasks.items()}
        pools = {name: traffic_order(split.train, s.seed) for name, split in splits.items()}
        self.traffic = mixed_traffic(pools, m.shares, s.requests, s.seed)
        self.validation: list[Example] = [
            replace(ex, task=name)
            for name, split in splits.items()
            for ex in round_robin(split.validation, m.val_per_task)
        ]
        self.spec = TeacherSpec(1.0, s.teacher_latency_ms, s.price_in, s.price_out)
        self.admin_key = secrets.token_urlsafe(24)
        self.teacher: Server | None = None
        self.base_model: Path | None = None
        self.started = time.time()
        self.raw: dict[str, Any] = {
            "benchmark": "mixed",
            "settings": m.public(),
            "prices": Prices(s.price_in, s.price_out, s.student_price, s.student_price).to_dict(),
            "machine": machine_info(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "tasks": self._task_info(splits),
            "notes": [],
            "segments": [],
        }

    def _task_info(self, splits: dict[str, Any]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for _, ex in self.traffic:
            counts[ex.task] = counts.get(ex.task, 0) + 1
        return {
            name: {
                "stated_teacher_accuracy": self.m.task_accuracy.get(name, task.default_accuracy),
                "traffic_requests": counts.get(name, 0),
                "traffic_pool": len(splits[name].train),
                "validation_pool": len(splits[name].validation),
            }
            for name, task in self.tasks.items()
        }

    def checkpoint(self, segments: list[dict[str, Any]] | None = None) -> None:
        """Saves the raw record so far (a crash late in a long run keeps the early rounds)."""
        if segments is not None:
            self.raw["segments"] = segments
        self.raw["minutes"] = (time.time() - self.started) / 60
        (self.m.bench.work_dir / "raw.json").write_text(json.dumps(self.raw, default=str))

    def driver(self, base_url: str, api_key: str, concurrency: int) -> Driver:
        cfg = DriverConfig(
            base_url=base_url, api_key=api_key, model=self.m.model, concurrency=concurrency,
            stream_fraction=self.m.bench.stream_fraction, seed=self.m.bench.seed,
            name_tasks=self.m.name_tasks,
        )  # fmt: skip
        return Driver(cfg, list(self.tasks.values()))

    def teacher_args(self) -> list[str]:
        args = []
        for name in self.tasks:
            acc = self.m.task_accuracy.get(name)
            args += ["--task", name if acc is None else f"{name}={acc}"]
        return args

    async def learning(self) -> None:
        assert self.teacher is not None
        s = self.m.bench
        env = proxy_env(
            s, self.teacher.v1, self.spec.api_key, self.admin_key, "learning", self.base_model
        )
        say("learning proxy: starting (embedded vLLM unless --student-url)")
        proxy = start_proxy("learning-proxy", env, self.logs, s.ready_timeout)
        driver = self.driver(proxy.v1, "bench-client", s.concurrency)
        admin = AdminClient(proxy.root, self.admin_key)
        loop = LoopConfig(
            s.retrain_every,
            s.max_rounds,
            s.run_start_timeout,
            s.run_timeout,
            s.ready_timeout,
            first_round_at=s.train_min_rows,
            per_task=True,  # the proxy's default loop: a student per task
        )
        try:
            await learn(
                self.raw, driver, admin, self.traffic, self.validation, loop,
                self.teacher.root, self.checkpoint,
            )  # fmt: skip
            self.raw["proxy_tasks"] = await admin.tasks()
            self.raw["calibration_final"] = await admin.calibration()
        finally:
            await driver.aclose()
            await admin.aclose()
            stop_server(proxy)

    async def run(self) -> dict[str, Any]:
        s = self.m.bench
        s.work_dir.mkdir(parents=True, exist_ok=True)
        if not s.student_url:
            self.base_model = ensure_base_model()
        self.teacher = start_replay_teacher(
            TEACHER_MODULE, self.spec, self.logs, self.teacher_args()
        )
        try:
            driver = self.driver(self.teacher.v1, self.spec.api_key, TEACHER_CONCURRENCY)
            self.raw["teacher_baseline"] = await all_teacher(driver, self.traffic)
            self.checkpoint()
            await self.learning()
        finally:
            stop_server(self.teacher)
            self.checkpoint()
        return self.raw


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    quarter = summary["final_quarter"]
    return {
        "requests": summary["requests"],
        "teacher_call_fraction_final_quarter": quarter["overall"]["teacher_call_fraction"],
        "per_task_final_quarter": {
            name: {
                "teacher_call_fraction": block["teacher_call_fraction"],
                "quality_ratio": block["quality_ratio"],
            }
            for name, block in quarter["tasks"].items()
        },
        "goals_met": {name: goal["met"] for name, goal in summary["goals"].items()},
        "minutes": summary["minutes"],
    }


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    bench = MixedBench(settings)
    work_dir = settings.bench.work_dir
    print(f"[bench] work dir {work_dir}", flush=True)
    try:
        raw = asyncio.run(bench.run())
    except KeyboardInterrupt:
        print(f"[bench] interrupted; partial record in {work_dir / 'raw.json'}")
        return 130
    except (ProcessFailed, AdminError, OSError, subprocess.CalledProcessError) as exc:
        say(f"benchmark failed: {type(exc).__name__}: {exc}")
        bench.raw["notes"].append(f"run aborted: {type(exc).__name__}: {str(exc)[:300]}")
        bench.checkpoint()
        if "teacher_baseline" in bench.raw:
            write_report(bench.raw, work_dir / "partial-report")  # never over the results
            say(f"partial report in {work_dir / 'partial-report'}")
        return 1
    problems = machinery_problems(raw)
    raw["notes"].extend(f"machinery: {p}" for p in problems)
    summary = write_report(raw, settings.bench.out_dir)
    print(json.dumps(_headline(summary), indent=2))
    print(f"[bench] report in {settings.bench.out_dir}")
    for problem in problems:
        say(f"machinery problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
