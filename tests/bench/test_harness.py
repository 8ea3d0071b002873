"""The harness end to end on loopback: the mixed replay teacher (its command line's build)
behind a real server, the driver sending every task's traffic with the official SDK
(streamed and not), each answer scored by its task; and the harness's layering."""

from __future__ import annotations

import ast
import asyncio
from collections import Counter
from pathlib import Path

from bench.harness.driver import Driver, DriverConfig
from bench.harness.replay_server import create_app
from bench.mixed import replay_teacher
from bench.mixed.config import build_tasks, parse_settings
from bench.mixed.run import MixedBench
from tests.server_thread import running

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (BENCH / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_harness_knows_no_task_and_tasks_know_no_benchmark() -> None:
    harness = {m for m in _imports("harness") if m.startswith("bench.")}
    assert harness and all(m.startswith(("bench.harness", "bench.common")) for m in harness)
    tasks = {m for m in _imports("tasks") if m.startswith("bench.")}
    assert tasks and all(m.startswith(("bench.harness", "bench.tasks")) for m in tasks)


def test_mixed_traffic_through_the_replay_teacher_over_http() -> None:
    bench = MixedBench(parse_settings(["--quick", "--seed", "5"]))
    args = replay_teacher.parse_args(
        ["--task", "banking77=1.0", "--task", "clinc150=1.0", "--task", "snips=1.0",
         "--task", "freeform", "--latency-ms", "0", "--tokenizer", "simple", "--seed", "0"]
    )  # fmt: skip
    teacher = replay_teacher.build(args)
    assert teacher.cfg.task_accuracy == {"banking77": 1.0, "clinc150": 1.0, "snips": 1.0}
    with running(create_app(teacher)) as root:
        cfg = DriverConfig(f"{root}/v1", model="support-app", concurrency=4, seed=5)
        driver = Driver(cfg, list(build_tasks().values()))

        async def go() -> list[dict[str, object]]:
            try:
                return [r.to_dict() for r in await driver.run(bench.traffic, "teacher", 0)]
            finally:
                await driver.aclose()

        records = asyncio.run(go())
    assert len(records) == 100 and all(r["status"] == 200 for r in records)
    assert Counter(str(r["task"]) for r in records) == {
        "banking77": 40, "clinc150": 25, "snips": 25, "freeform": 10,
    }  # fmt: skip
    assert any(r["stream"] for r in records) and not all(r["stream"] for r in records)
    # A teacher at accuracy 1.0 is right on every task, streamed or not: each request
    # reached its own task's answerer and was scored by its own task.
    assert all(r["correct"] for r in records), [r for r in records if not r["correct"]][:2]
    snips_rows = [r for r in records if r["task"] == "snips"]
    assert all((r["metrics"] or {}).get("valid") == 1.0 for r in snips_rows)  # type: ignore[union-attr]
    assert teacher.stats.requests == 100


def test_banking77_report_carries_the_shared_per_task_table(tmp_path: Path) -> None:
    from bench.banking77.report import write_report
    from tests.bench.test_bench_report import fake_raw

    raw = fake_raw()
    summary = write_report(raw, tmp_path)
    learning = [r for seg in raw["segments"] for r in seg["records"]]
    block = summary["per_task"]["tasks"]["banking77"]
    assert block["requests"] == len(learning) == summary["per_task"]["overall"]["requests"]
    assert block["teacher_calls"] == sum(1 for r in learning if r["route"] == "teacher")
    assert block["served"]["accuracy"] == summary["served_accuracy_overall"]
