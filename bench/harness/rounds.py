"""The learning phase: traffic in segments, each closed by a re-distillation run.

A segment streams queries until K of them were answered by the teacher. Then the
driver pauses (on 2 CPU cores a training run and live traffic would only slow each
other down), waits for the run the proxy's scheduler starts (or triggers one through
the admin API when the scheduler does not), waits for it to finish and for the
proxy to be ready again, and measures the student alone on the validation split.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from bench.common.console import say
from bench.harness.admin import AdminClient, AdminError, RunInfo
from bench.harness.driver import Driver, RequestRecord
from bench.harness.due import DueRule, teacher_count
from bench.harness.examples import Example
from bench.harness.latency import BusyProbes, idle_probes, latency_summary

VALIDATION_INDEX_BASE = 1_000_000  # keeps validation indices apart from traffic indices
FORCE_STUDENT = {"x-distill-route": "student", "x-distill-tag": "bench-validation"}
# store: false keeps validation queries out of every training set (never traffic); the
# logprobs let the report compare every confidence scorer on the same answers.
VALIDATION_BODY = {"store": False, "logprobs": True, "top_logprobs": 5}
LOG_FLUSH_WAIT = 1.5  # seconds; the proxy's log writer flushes every 0.5 s by default
SETTLE_TIMEOUT = 600.0  # seconds to wait for a segment's rows to reach the proxy's log


@dataclass(slots=True)
class LoopConfig:
    """Knobs of the learning loop."""

    retrain_every: int
    max_rounds: int | None
    run_start_timeout: float
    run_timeout: float
    ready_timeout: float
    log_flush_wait: float = LOG_FLUSH_WAIT
    first_round_at: int = 0
    """Teacher answers before the first round (the proxy's train_min_rows): the scheduler
    starts no run with fewer, and a forced one would fail for want of rows."""
    per_task: bool = False
    """Count teacher answers per task (the proxy's per-task loop): `bench.harness.due`."""


SpendProbe = Callable[[], Awaitable[float | None]]
Checkpoint = Callable[[list[dict[str, Any]]], None]


async def teacher_spend_probe(teacher_root: str) -> float | None:
    """The replay teacher's running spend (USD), None if it cannot be read."""
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        try:
            response = await http.get(f"{teacher_root}/stats")
            return float(response.json()["cost_usd"])
        except (httpx.HTTPError, KeyError, ValueError, TypeError):
            return None


async def validate(driver: Driver, validation: list[Example], round_no: int) -> list[RequestRecord]:
    """Student-only answers for the validation queries (forced route, never stored)."""
    items = [(VALIDATION_INDEX_BASE + i, ex) for i, ex in enumerate(validation)]
    return await driver.run(
        items,
        "validation",
        round_no,
        headers=FORCE_STUDENT,
        extra_body=VALIDATION_BODY,
        force_stream=False,
    )


def _training_seconds(run: RunInfo, waited: float) -> float:
    """Seconds from the trainer's start to the run's end (training plus evaluation)."""
    raw = run.raw
    for key in ("training_seconds", "train_seconds", "duration_s", "duration_seconds"):
        if isinstance(raw.get(key), int | float):
            return float(raw[key])
    try:
        started = datetime.fromisoformat(str(raw["started_at"]))
        finished = datetime.fromisoformat(str(raw["finished_at"]))
    except (KeyError, ValueError):
        return waited
    return (finished - started).total_seconds()


async def proxy_costs(
    admin: AdminClient,
    expected: int | None = None,
    wait: float = LOG_FLUSH_WAIT,
    timeout: float = SETTLE_TIMEOUT,
) -> dict[str, float] | None:
    """The proxy's own cost accounting once `expected` requests are in its log.

    A row is written when its request is complete, and a fallback's row also waits for
    the student answer it records (generated in the background on a busy CPU), so the
    log can trail the responses by minutes; deltas taken too early would miss rows.
    """
    deadline = time.monotonic() + timeout
    while True:
        await asyncio.sleep(wait)
        summary = (await admin.stats()).get("summary")
        if not isinstance(summary, dict):
            return None
        try:
            out = {
                k: float(summary[k]) for k in ("cost_usd", "counterfactual_cost_usd", "requests")
            }
        except (KeyError, TypeError, ValueError):
            return None
        if expected is None or out["requests"] >= expected or time.monotonic() >= deadline:
            return out


def _delta(after: dict[str, float] | None, before: dict[str, float] | None) -> Any:
    if after is None or before is None:
        return None
    return {k: after[k] - before[k] for k in after}


async def _await_ready(admin: AdminClient, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status, body = await admin.readyz()
    while status != 200 and time.monotonic() < deadline:
        await asyncio.sleep(2.0)
        status, body = await admin.readyz()
    if status != 200:
        raise AdminError(f"proxy not ready after the run: {body}")
    return body


async def run_round(admin: AdminClient, known: set[str], cfg: LoopConfig) -> dict[str, Any]:
    """Waits for (or triggers) the next run and its end; returns what the report needs."""
    start = time.monotonic()
    run = await admin.wait_new_run(known, cfg.run_start_timeout)
    trigger = "scheduler"
    if run is None:
        trigger = "bench"
        run = await admin.trigger() or await admin.wait_new_run(known, 60.0)
        if run is None:
            raise AdminError("POST /admin/runs started no run")
    known.add(run.id)
    final = await admin.wait_finished(run.id, cfg.run_timeout)
    waited = time.monotonic() - start
    ready = await _await_ready(admin, cfg.ready_timeout)
    return {
        "run": {"id": final.id, "status": final.status, "raw": final.raw},
        "trigger": trigger,
        "training_seconds": _training_seconds(final, waited),
        "wall_seconds": waited,
        "student_version": ready.get("student_version"),
    }


@dataclass(slots=True)
class Phase:
    """What the learning phase talks to, and its progress so far."""

    driver: Driver
    admin: AdminClient
    cfg: LoopConfig
    spend: SpendProbe
    known_runs: set[str]
    logged: int  # requests the proxy's log should hold by now
    due: DueRule


def _share(records: list[RequestRecord]) -> float:
    return sum(r.correct for r in records) / max(1, len(records))


async def _segment(ph: Phase, items: list[tuple[int, Example]], round_no: int) -> dict[str, Any]:
    """One stretch of traffic, stopped after K teacher answers when a round is due."""
    retrain = ph.cfg.max_rounds is None or round_no <= ph.cfg.max_rounds
    costs_before = await proxy_costs(ph.admin, ph.logged, ph.cfg.log_flush_wait)
    before = await ph.spend()
    records = await ph.driver.run(
        items, "learning", round_no, stop=ph.due.stop(round_no) if retrain else None
    )
    due = retrain and ph.due.is_due(records, round_no)
    ph.due.add(records)
    ph.logged += len(records)
    costs_after = await proxy_costs(ph.admin, ph.logged, ph.cfg.log_flush_wait)
    calibration_end = await ph.admin.calibration()  # what served the segment, at its end
    after = await ph.spend()  # after the log settled: shadow calls are in it too
    say(f"round {round_no}: {len(records)} requests, {teacher_count(records)} to the "
        f"teacher, served accuracy {_share(records):.3f}")  # fmt: skip
    return {
        "round": round_no,
        "records": [r.to_dict() for r in records],
        "proxy_cost": _delta(costs_after, costs_before),
        "teacher_spend_usd": None if after is None or before is None else after - before,
        "due": due,
        "calibration_end": calibration_end,
    }


async def _close_round(
    ph: Phase, seg: dict[str, Any], validation: list[Example], round_no: int
) -> None:
    """The run the segment triggered (latency probed beside it and after), then the
    calibration it left and the student alone on the validation split."""
    busy = BusyProbes(ph.driver, validation, round_no)
    busy.start()
    try:
        seg.update(await run_round(ph.admin, ph.known_runs, ph.cfg))
    finally:
        during = await busy.stop()
    if seg["run"]["status"] in ("promoted", "rejected"):  # judged: that task starts again
        ph.due.ran(seg["run"]["raw"].get("task"))
    idle = await idle_probes(ph.driver, validation, round_no)
    ph.logged += len(during) + len(idle)
    seg["latency_probes"] = {
        "during_training": latency_summary(during),
        "idle": latency_summary(idle),
        "records": [r.to_dict() for r in during + idle],
    }
    seg["calibration_after_run"] = await ph.admin.calibration()
    checked = await validate(ph.driver, validation, round_no)
    ph.logged += len(checked)
    seg["validation"] = {"records": [r.to_dict() for r in checked]}
    probes = seg["latency_probes"]
    say(f"round {round_no}: run {seg['run']['id']} {seg['run']['status']} "
        f"({seg['training_seconds']:.0f}s, {seg['trigger']}); student alone "
        f"{_share(checked):.3f}; student p50 {probes['idle']['p50_ms']} ms idle, "
        f"{probes['during_training']['p50_ms']} ms beside training")  # fmt: skip


async def learning_phase(
    driver: Driver,
    admin: AdminClient,
    traffic: list[tuple[int, Example]],
    validation: list[Example],
    cfg: LoopConfig,
    spend: SpendProbe,
    checkpoint: Checkpoint,
) -> list[dict[str, Any]]:
    """All traffic through the learning proxy, one segment per re-distillation round."""
    start = await proxy_costs(admin, wait=cfg.log_flush_wait)
    known = {run.id for run in await admin.runs()}
    due = DueRule(cfg.retrain_every, cfg.first_round_at, cfg.per_task)
    ph = Phase(driver, admin, cfg, spend, known, int(start["requests"]) if start else 0, due)
    segments: list[dict[str, Any]] = []
    pos = 0
    while pos < len(traffic):
        round_no = len(segments) + 1
        seg = await _segment(ph, traffic[pos:], round_no)
        pos += len(seg["records"])
        if seg.pop("due"):
            await _close_round(ph, seg, validation, round_no)
        seg["proxy_stats"] = await admin.stats()
        segments.append(seg)
        checkpoint(segments)
    return segments
