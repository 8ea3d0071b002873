"""The loop inside the server: wiring on ``app.state.loop`` and the APScheduler jobs.

`start_loop(app)` (from the lifespan, after the student is started) marks runs a previous
process left running as failed, restores the active student version (and re-loads its
adapter whenever vLLM comes back), then starts an `AsyncIOScheduler` with:

- ``train_schedule``: a cron expression (``"0 3 * * *"``) or an interval (``"30m"``);
- ``train_every_rows``: checked every ``train_rows_check_interval`` seconds;
- calibration refresh every ``calibration_interval`` seconds (calibration mode), at once too;
- for external students, a check every few seconds that each replica still lists the
  active adapters (a restarted vLLM has forgotten them).

With a shared (PostgreSQL) log only the elected leader (`proxy.loop.leader`) recovers
runs and has the training and calibration jobs; the other replicas follow the active
version from the shared table. The adapter check runs on every replica.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from proxy.logstore.snapshot import export_snapshot
from proxy.loop.calibrator import Calibrator
from proxy.loop.leader import LeaderLoop, leadership_for
from proxy.loop.lora import LoraAdmin
from proxy.loop.promotion import Promoter
from proxy.loop.runs import RunConflict, RunManager
from proxy.loop.store import LoopStore, VersionRow, utcnow
from proxy.serving.student_state import ActiveStudents
from proxy.settings import Settings
from proxy.student.encoder import encoder_tokenizer
from proxy.student.model import default_model_dir

log = logging.getLogger("distill.loop")

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
RELOAD_CHECK_S = 1.0  # in-memory check of what the pool's probe saw; cheap
LEADER_JOBS = ("train-schedule", "train-rows", "calibration")


@dataclass
class LoopServices:
    store: LoopStore
    lora: LoraAdmin
    calibrator: Calibrator
    promoter: Promoter
    runs: RunManager
    scheduler: AsyncIOScheduler
    encoder_starting: Callable[[], bool] = lambda: False
    """True while the vote student's embedded encoder is still loading: a rows-triggered
    run waits for it rather than fail for want of an encoder."""


def parse_schedule(text: str) -> BaseTrigger:
    """``"30m"``/``"6h"``/``"1d"`` -> interval; anything else must be a 5-field crontab."""
    match = _INTERVAL.match(text)
    if match:
        seconds = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}).total_seconds()
        if seconds <= 0:
            raise ValueError(f"train_schedule {text!r}: the interval must be positive")
        return IntervalTrigger(seconds=seconds)
    try:
        return CronTrigger.from_crontab(text)
    except ValueError as exc:
        raise ValueError(
            f"train_schedule {text!r} is neither an interval like 30m/6h/1d nor "
            f"a cron expression like '0 3 * * *': {exc}"
        ) from None


def trainer_command(settings: Settings) -> list[str]:
    if settings.trainer_command:
        return shlex.split(settings.trainer_command)
    return [sys.executable, "-m", "trainer.run"]


def base_model_arg(settings: Settings) -> str:
    """The base model the trainer fine-tunes: the one vLLM serves. Always passed (the trainer
    never reads the proxy's settings): the default model's directory, if it is not converted
    yet, the trainer converts first (`trainer.run.resolve_base_model_arg`)."""
    if settings.student_base_model:
        return settings.student_base_model
    return str(default_model_dir(settings).resolve())


def _replica_urls(state: Any) -> list[str]:
    supervisor = state.supervisor
    if supervisor is not None:
        return [supervisor.url] if supervisor.url else []
    return list(state.settings.student_urls)


def _encoder_url(state: Any) -> str | None:
    """Where the trainer embeds a vote student's rows: a ready encoder replica."""
    vote = getattr(state, "vote", None)
    if vote is None:
        return None
    ready = [e.url for e in vote.pool.endpoints if e.ready]
    return ready[0] if ready else None


def _base_name(state: Any) -> str | None:
    if state.supervisor is not None:
        return str(state.supervisor.model_name)
    if state.settings.student_model:
        return str(state.settings.student_model)
    for endpoint in state.pool.endpoints:
        if endpoint.models:
            return str(endpoint.models[0])  # vLLM lists the base model first
    return None


def _trainer_args(state: Any, promoter: Promoter, task: str | None) -> list[str]:
    args: list[str] = ["--base-model", base_model_arg(state.settings)]
    current = state.active.slot(task).current  # the run's incumbent
    adapter = promoter.adapter_path(current.name)
    if adapter is not None:
        args += ["--incumbent-adapter", str(adapter)]
    encoder = _encoder_url(state)
    if encoder:
        args += ["--encoder-url", encoder, "--encoder-model", state.settings.encoder_served_name]
        tokenizer = encoder_tokenizer(state.settings)
        if tokenizer is not None:
            args += ["--encoder-tokenizer", str(tokenizer)]
    urls, base_name = _replica_urls(state), _base_name(state)
    if urls and base_name and state.pool.available():
        # No --eval-incumbent-model: runs skip the incumbent (the gate measures it).
        args += ["--eval-url", urls[0], "--eval-model", base_name]
    return args


def build_loop(app: Any) -> LoopServices:
    state = app.state
    settings: Settings = state.settings
    store = LoopStore(state.writer)
    state.active = ActiveStudents.of(state.active)  # one registry for every part
    lora = LoraAdmin(state.student_http, lambda: _replica_urls(state))
    calibrator = Calibrator(settings, store, state.active)
    promoter = Promoter(
        settings,
        state.active,
        state.pool,
        lora,
        store,
        calibrator,
        vote=getattr(state, "vote", None),
    )

    def export(dest: Path, since: datetime | None, task: str | None) -> Path:
        state.writer.flush()
        return export_snapshot(
            state.writer, dest, since, task=task, exclude_tasks=settings.excluded_tasks()
        )

    runs = RunManager(
        settings,
        store,
        promoter,
        export=export,
        command=trainer_command(settings),
        trainer_args=lambda task: _trainer_args(state, promoter, task),
    )
    if getattr(state, "vote", None) is None:
        # No encoder here (closed_set_student=lora, or an external student without
        # DISTILL_ENCODER_URL): closed-set and extraction tasks get the LoRA student.
        runs.run_defaults["closed_set_student"] = "lora"
        runs.run_defaults["extraction_student"] = "lora"
    return LoopServices(
        store,
        lora,
        calibrator,
        promoter,
        runs,
        AsyncIOScheduler(),
        lambda: _encoder_starting(state),
    )


def _encoder_starting(state: Any) -> bool:
    supervisor = getattr(state, "encoder_supervisor", None)
    return supervisor is not None and supervisor.state in ("starting", "down")


async def _scheduled_run(loop: LoopServices) -> None:
    with contextlib.suppress(RunConflict):  # recorded as skipped by the manager
        await loop.runs.trigger("schedule")


async def _rows_check(loop: LoopServices) -> None:
    if loop.encoder_starting():
        return
    with contextlib.suppress(RunConflict):
        await loop.runs.rows_run()


def _add_jobs(loop: LoopServices, settings: Settings, embedded: bool) -> None:
    _add_leader_jobs(loop, settings)
    _add_replica_jobs(loop, embedded)


def _add_leader_jobs(loop: LoopServices, settings: Settings) -> None:
    scheduler = loop.scheduler
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
    if settings.train_schedule:
        scheduler.add_job(
            _scheduled_run,
            parse_schedule(settings.train_schedule),
            args=[loop],
            id="train-schedule",
            **common,
        )
    if settings.train_every_rows:
        scheduler.add_job(
            _rows_check,
            IntervalTrigger(seconds=settings.train_rows_check_interval),
            args=[loop],
            id="train-rows",
            **common,
        )
    if settings.calibration_mode:
        scheduler.add_job(
            loop.calibrator.refresh,
            IntervalTrigger(seconds=settings.calibration_interval),
            id="calibration",
            next_run_time=datetime.now(),
            **common,
        )


def _add_replica_jobs(loop: LoopServices, embedded: bool) -> None:
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
    if not embedded:
        loop.scheduler.add_job(
            loop.promoter.reload_missing,
            IntervalTrigger(seconds=RELOAD_CHECK_S),
            id="adapter-reload",
            **common,
        )


async def _share_serving_version(loop: LoopServices, state: Any) -> None:
    """A new leader of a shared log records the base version it serves, so followers find
    its threshold (calibration writes it to that row) before any promotion."""
    current = state.active.default.current
    active, _ = await loop.store.active_and_previous()
    if active is not None or not current.name or current.version != "base":
        return
    await loop.store.save_version(
        VersionRow(
            name=current.name,
            run_id=None,
            adapter_path=None,
            activated_at=utcnow(),
            active=True,
            threshold=current.threshold,
            calibration=None,
            closed_set=current.closed_set,
            prompt_prefix=current.prompt_prefix,
        )  # fmt: skip
    )


def _leader_hooks(app: Any, loop: LoopServices) -> dict[str, Any]:
    state = app.state
    settings: Settings = state.settings

    async def elected() -> None:
        if loop.runs.current is None:  # else: re-elected while its own run goes on
            await loop.runs.recover()
        await loop.promoter.restore()
        if state.writer.backend.shared:
            await _share_serving_version(loop, state)
        _add_leader_jobs(loop, settings)

    async def lost() -> None:
        for job_id in LEADER_JOBS:
            if loop.scheduler.get_job(job_id) is not None:
                loop.scheduler.remove_job(job_id)
        # Another replica may lead by now: a run of this one must not promote over its head.
        if loop.runs.current is not None:
            with contextlib.suppress(*state.writer.backend.failures):
                await loop.runs.stop(grace=5.0)

    async def follow() -> None:
        if await loop.promoter.out_of_date():
            log.info("the leader changed the active versions: switching")
            await loop.promoter.restore()

    return {"on_elected": elected, "on_lost": lost, "follow": follow}


async def start_loop(app: Any) -> LoopServices:
    """Builds the loop on ``app.state.loop``, restores the active version, starts the jobs
    (the loop's own only on the leader: see `proxy.loop.leader`)."""
    state = app.state
    settings: Settings = state.settings
    if settings.train_schedule:
        parse_schedule(settings.train_schedule)  # a bad schedule stops start-up, loudly
    loop = build_loop(app)
    state.loop = loop
    if state.supervisor is not None:
        state.supervisor.on_ready.append(loop.promoter.ensure_loaded)
    leadership = leadership_for(state.writer.backend, settings.db)
    state.leader = LeaderLoop(
        leadership,
        settings.leader_poll_interval,
        errors=state.writer.backend.failures,
        **_leader_hooks(app, loop),
    )
    await state.leader.start()  # the leader recovers runs and restores; a follower follows
    _add_replica_jobs(loop, embedded=state.supervisor is not None)
    loop.scheduler.start()
    return loop


async def stop_loop(app: Any) -> None:
    loop: LoopServices | None = getattr(app.state, "loop", None)
    if loop is None:
        return
    leader: LeaderLoop | None = getattr(app.state, "leader", None)
    if leader is not None:
        await leader.stop()
    if loop.scheduler.running:
        loop.scheduler.shutdown(wait=False)
    await loop.runs.stop()
