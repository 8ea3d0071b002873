"""Student-route latency probes: one request at a time, forced to the student, never stored.

Measured twice per round: while the re-distillation run trains beside the serving vLLM (the
CPU is shared) and right after it (nothing else running), so the cost of training on
serving shows as two numbers from the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Any

from bench.harness.driver import Driver, RequestRecord
from bench.harness.examples import Example
from bench.harness.stats import percentile

PROBE_INDEX_BASE = 2_000_000  # apart from traffic and validation indices
PROBE_HEADERS = {"x-distill-route": "student", "x-distill-tag": "bench-latency-probe"}
PROBE_BODY = {"store": False}
IDLE_PROBES = 20
BUSY_INTERVAL_S = 20.0  # sparse: each probe takes CPU from the run it measures


async def _one(driver: Driver, i: int, ex: Example, phase: str, round_no: int) -> RequestRecord:
    return await driver.one(
        PROBE_INDEX_BASE + i, ex, False, phase, round_no, PROBE_HEADERS, PROBE_BODY
    )


async def idle_probes(
    driver: Driver, examples: Sequence[Example], round_no: int, n: int = IDLE_PROBES
) -> list[RequestRecord]:
    """`n` sequential probes with nothing else going on."""
    out = []
    for i, ex in zip(range(n), itertools.cycle(examples), strict=False):
        out.append(await _one(driver, i, ex, "latency-idle", round_no))
    return out


class BusyProbes:
    """Probes every `interval` seconds until stopped (around a training run)."""

    def __init__(
        self, driver: Driver, examples: Sequence[Example], round_no: int,
        interval: float = BUSY_INTERVAL_S,
    ) -> None:  # fmt: skip
        self.records: list[RequestRecord] = []
        self._args = (driver, list(examples), round_no, interval)
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        driver, examples, round_no, interval = self._args
        for i, ex in enumerate(itertools.cycle(examples)):
            self.records.append(await _one(driver, i, ex, "latency-training", round_no))
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> list[RequestRecord]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.records


def latency_summary(records: Sequence[RequestRecord | dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 of the probes the student answered (errors and fallbacks counted apart)."""
    rows = [r.to_dict() if isinstance(r, RequestRecord) else r for r in records]
    ok = [r["latency_ms"] for r in rows if r.get("route") == "student" and not r.get("error")]
    return {
        "n": len(rows),
        "student_answered": len(ok),
        "p50_ms": percentile(ok, 50),
        "p95_ms": percentile(ok, 95),
    }
