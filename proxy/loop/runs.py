"""`RunManager`: one distillation run at a time, in a separate process.

A trigger (``manual``, ``schedule``, ``rows``) starts a run unless one is going: then the
trigger is recorded in `runs` as ``skipped`` with the reason (never queued). A run exports a
Parquet snapshot of the log (the trainer never opens the live DuckDB file), spawns the
trainer command (``python -m trainer.run`` by default; `trainer_command` replaces it, the
seam tests use) in its own process group, and waits for it without blocking the event loop.
Exit 0 hands the run directory to the `Promoter` (status ``evaluating``, then ``promoted``
or ``rejected``); anything else marks it ``failed`` with the reason (``error.txt``, exit code
or signal) and leaves serving untouched. Runs left ``running`` by a previous server process
are marked failed at start-up and their orphaned trainer is killed.

With ``loop_scope = task`` a run trains one task (its rows only, `proxy.loop.tasks` picks
it when the trigger names none) and its candidate competes with that task's incumbent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from proxy.logstore.writer import LogStoreUnavailable
from proxy.loop.artifacts import (
    CONFIG,
    SNAPSHOT,
    ArtifactError,
    RunArtifacts,
    error_text,
    read_json,
)
from proxy.loop.evaluate import EvaluationError
from proxy.loop.lora import LoraError
from proxy.loop.process import describe_exit, kill_orphan, signal_group, spawn, terminate
from proxy.loop.promotion import Promoter
from proxy.loop.store import LoopStore, utcnow
from proxy.loop.tasks import choose, task_traffic
from proxy.loop.train_config import train_config_from_settings
from proxy.settings import Settings

log = logging.getLogger("distill.loop")

TRIGGERS = ("manual", "schedule", "rows")
ExportFn = Callable[[Path, datetime | None, str | None], Path]
TrainerArgs = Callable[[str | None], list[str]]
_RUN_ERRORS = (
    LoraError,
    EvaluationError,
    ArtifactError,
    OSError,
    LogStoreUnavailable,
    duckdb.Error,
)


class RunConflict(RuntimeError):
    """A run is already going; the trigger was recorded as skipped."""

    def __init__(self, running_id: str, skipped_id: str) -> None:
        super().__init__(f"run {running_id} is in progress")
        self.running_id = running_id
        self.skipped_id = skipped_id


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass
class ActiveRun:
    id: str
    trigger: str
    run_dir: Path
    config: dict[str, Any]
    since: datetime | None = None
    task_name: str | None = None
    """The task it trains (None: all traffic)."""
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    finished: bool = field(default=False)


class RunManager:
    def __init__(
        self,
        settings: Settings,
        store: LoopStore,
        promoter: Promoter,
        *,
        export: ExportFn,
        command: list[str],
        trainer_args: TrainerArgs,
    ) -> None:
        self._settings = settings
        self._store = store
        self._promoter = promoter
        self._export = export
        self._command = command
        self._trainer_args = trainer_args
        self._current: ActiveRun | None = None
        self.run_defaults: dict[str, Any] = {}
        """TrainConfig values this server imposes on its runs (e.g. no vote student
        without an encoder), below the per-run overrides."""

    @property
    def runs_dir(self) -> Path:
        return self._settings.data_dir / "runs"

    @property
    def current(self) -> ActiveRun | None:
        return self._current

    # --- triggers ---------------------------------------------------------------------------
    @property
    def per_task(self) -> bool:
        return self._settings.loop_scope == "task"

    def _config(self, overrides: dict[str, Any] | None, task: str | None) -> dict[str, Any]:
        # The promotion gate measures the incumbent itself: the trainer need not.
        values = {"eval_incumbent": False, **self.run_defaults, **(overrides or {})}
        if task is not None:
            values["task"] = task
        return train_config_from_settings(self._settings, **values).to_dict()

    async def trigger(
        self,
        trigger: str,
        *,
        since: datetime | None = None,
        overrides: dict[str, Any] | None = None,
        task: str | None = None,
    ) -> str:
        """Starts a run and returns its id; raises `RunConflict` while one is going and
        `ValueError` for bad config overrides. Without a `task`, a per-task loop trains
        the task worth it most (`proxy.loop.tasks`), all traffic when there is none."""
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {trigger!r}")
        self._check_task(task)
        config = self._config(overrides, task)  # bad overrides fail before any row
        running = self._current
        if running is not None:
            skipped = new_run_id()
            reason = f"run {running.id} was in progress"
            log.info("%s trigger skipped: %s", trigger, reason)
            await self._store.insert_run(skipped, trigger, "skipped", reason=reason, task=task)
            raise RunConflict(running.id, skipped)
        run_id = new_run_id()
        run = ActiveRun(run_id, trigger, self.runs_dir / run_id, config, since, task)
        self._current = run  # claimed before any await: a second trigger sees it
        try:
            if task is None and self.per_task:
                run.task_name = await self.pick_task(due_only=False)
                run.config = config = self._config(overrides, run.task_name)
            await self._store.insert_run(
                run.id, trigger, "running", config=config, task=run.task_name
            )
        except BaseException:
            self._current = None
            raise
        run.task = asyncio.create_task(self._execute(run), name=f"run-{run.id}")
        run.task.add_done_callback(_log_crash)
        return run.id

    def _check_task(self, task: str | None) -> None:
        if task is None:
            return
        if not self.per_task:
            raise ValueError("a run of one task needs DISTILL_LOOP_SCOPE=task")
        override = self._settings.tasks.get(task)
        if override is not None and override.exclude:
            raise ValueError(f"task {task!r} is excluded ([tasks.{task}] exclude = true)")

    async def pick_task(self, *, due_only: bool) -> str | None:
        """The task to train next; with `due_only`, among tasks with `train_every_rows` new
        teacher answers only (None: none is due)."""
        s = self._settings
        if not due_only:  # a manual run right after the traffic it is about
            await self._store.flush()
        traffic = await self._store.read(task_traffic)
        chosen = choose(
            traffic, s.tasks, every=s.train_every_rows if due_only else None,
            min_rows=s.train_min_rows,
        )  # fmt: skip
        return chosen.task if chosen else None

    async def rows_due(self) -> bool:
        """True when `train_every_rows` new teacher answers were logged since the last run."""
        every = self._settings.train_every_rows
        if every is None or self._current is not None:
            return False
        since = await self._store.last_run_created_at()
        if since is None:  # the first run: one with fewer than train_min_rows would fail
            every = max(every, self._settings.train_min_rows)
        return await self._store.teacher_rows_since(since) >= every

    async def rows_run(self) -> str | None:
        """Starts the run the rows trigger calls for, if one is due: per task, the due
        task worth it most. Returns the run id."""
        if self._settings.train_every_rows is None or self._current is not None:
            return None
        if not self.per_task:
            return await self.trigger("rows") if await self.rows_due() else None
        task = await self.pick_task(due_only=True)
        return None if task is None else await self.trigger("rows", task=task)

    # --- one run ----------------------------------------------------------------------------
    async def _execute(self, run: ActiveRun) -> None:
        try:
            code = await self._train(run)
            if code != 0 or run.stop_reason:
                await self._finish(run, "failed", self._failure(run, code))
                return
            await self._store.update_run(run.id, status="evaluating")
            log.info("run %s: training done; evaluating the candidate through vLLM", run.id)
            outcome = await self._promoter.consider(
                run.id, RunArtifacts(run.run_dir), task=run.task_name
            )
            await self._finish(
                run, "promoted" if outcome.promoted else "rejected", outcome.reason,
                metrics_json=outcome.metrics, adapter_path=str(run.run_dir / "adapter"),
                report_path=str(run.run_dir / "report.json"),
            )  # fmt: skip
        except _RUN_ERRORS as exc:
            await self._finish(run, "failed", f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            await self._finish(run, "failed", run.stop_reason or "cancelled")
            raise
        finally:
            if not run.finished:  # an unexpected error: do not leave the run 'running'
                await self._finish(run, "failed", "internal error (see the server log)")
            if self._current is run:
                self._current = None

    async def _train(self, run: ActiveRun) -> int:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        snapshot = await asyncio.to_thread(
            self._export, run.run_dir / SNAPSHOT, run.since, run.task_name
        )
        (run.run_dir / CONFIG).write_text(json.dumps(run.config, indent=2))
        cmd = [
            *self._command,
            "--snapshot",
            str(snapshot),
            "--run-dir",
            str(run.run_dir),
            "--config-json",
            str(run.run_dir / CONFIG),
            "--run-id",
            run.id,
            *self._trainer_args(run.task_name),
        ]
        if run.stop_reason:
            return -15
        run.process = proc = await spawn(
            cmd, run.run_dir / "process.log", nice=self._settings.train_nice
        )
        await self._store.update_run(run.id, pid=proc.pid, started_at=utcnow())
        log.info(
            "run %s started (trigger %s, task %s): pid %d, output in %s",
            run.id,
            run.trigger,
            run.task_name or "all",
            proc.pid,
            run.run_dir / "process.log",
        )
        try:
            code = await asyncio.wait_for(proc.wait(), self._settings.train_timeout)
        except TimeoutError:
            run.stop_reason = f"timed out after {self._settings.train_timeout:.0f} s"
            return await terminate(proc)
        signal_group(proc.pid, signal.SIGKILL)  # whatever the trainer left behind in its group
        return code

    def _failure(self, run: ActiveRun, code: int) -> str:
        exit_text = describe_exit(code)
        if run.stop_reason:
            return f"{run.stop_reason} ({exit_text})"
        error = error_text(run.run_dir)
        return f"{exit_text}: {error}" if error else exit_text

    async def _finish(self, run: ActiveRun, status: str, reason: str, **fields: Any) -> None:
        run.finished = True
        level = logging.WARNING if status == "failed" else logging.INFO
        log.log(level, "run %s %s: %s", run.id, status, reason)
        try:
            await self._store.update_run(run.id, status=status, reason=reason[:2000], **fields)
        except (LogStoreUnavailable, duckdb.Error) as exc:
            log.error("could not record the outcome of run %s: %s", run.id, exc)

    # --- control ----------------------------------------------------------------------------
    async def cancel(self, run_id: str, reason: str = "cancelled by the admin") -> bool:
        """Stops the run if it is the current one; it ends as failed with `reason`."""
        run = self._current
        if run is None or run.id != run_id:
            return False
        run.stop_reason = reason
        if run.process is not None and run.process.returncode is None:
            await terminate(run.process)
        elif run.task is not None and run.process is not None:
            run.task.cancel()  # evaluating: the promoter unloads the candidate
        return True

    async def stop(self, grace: float = 30.0) -> None:
        """Server shutdown: the running trainer is killed and its run marked failed."""
        run = self._current
        if run is None:
            return
        await self.cancel(run.id, "the server shut down during the run")
        if run.task is not None:
            done, _ = await asyncio.wait({run.task}, timeout=grace)
            if not done:
                run.task.cancel()
                await asyncio.wait({run.task}, timeout=5.0)

    async def recover(self) -> list[str]:
        """Marks runs a previous server process left running as failed; kills orphans."""
        stale = await self._store.fail_live_runs("the server stopped while the run was in progress")
        for run_id, pid in stale:
            kill_orphan(pid, str(self.runs_dir / run_id))
            log.warning("run %s was left running by a previous server process: failed", run_id)
        return [run_id for run_id, _ in stale]

    # --- views ------------------------------------------------------------------------------
    def progress(self, run_id: str) -> dict[str, Any] | None:
        data = read_json(self.runs_dir / run_id / "progress.json")
        return data or None

    async def list(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = await self._store.list_runs(limit)
        for row in rows:
            self._decorate(row)
        return rows

    async def get(self, run_id: str) -> dict[str, Any] | None:
        row = await self._store.get_run(run_id)
        if row is not None:
            self._decorate(row)
        return row

    def _decorate(self, row: dict[str, Any]) -> None:
        if row.get("status") in ("running", "evaluating"):
            row["progress"] = self.progress(str(row["id"]))


def _log_crash(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("run task %s crashed", task.get_name(), exc_info=exc)
