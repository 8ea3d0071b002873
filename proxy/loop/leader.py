"""One leader among the replicas of a shared log: it alone runs the training loop.

With PostgreSQL every replica tries, every ``leader_poll_interval`` seconds, to take a
session-level advisory lock on a connection of its own. The holder is the leader: it
runs the scheduler's loop jobs (training triggers, calibration), training runs and
promotions. The lock belongs to the connection, so when the leader dies its connection
closes and the next follower to try takes over within one interval; a leader that loses
its connection (the database restarted) steps down until it wins the lock again.

Followers serve the active student version of the shared ``student_versions`` table:
each interval they compare it (name, threshold, calibration, prompt prefix, closed set)
with what they serve and switch when the leader promotes, recalibrates or rolls back.

A DuckDB log has one process, which always leads (`SoloLeadership`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from proxy.logstore.backend import LogBackend

log = logging.getLogger("distill.leader")

LEADER_LOCK = 0x64697374_00000002  # beside postgres.MIGRATION_LOCK in the same namespace
Hook = Callable[[], Awaitable[None]]


def replica_name() -> str:
    """How this replica shows in pg_stat_activity.application_name (host:pid)."""
    return f"distill-replica {socket.gethostname()}:{os.getpid()}"


class Leadership(Protocol):
    is_leader: bool

    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


class SoloLeadership:
    """The only process of its log: leads from the start."""

    is_leader = True

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        return None


class AdvisoryLeadership:
    """The PostgreSQL advisory lock on a dedicated connection (blocking calls: use threads)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Any = None
        self.is_leader = False

    def try_acquire(self) -> bool:
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._url, autocommit=True, connect_timeout=5, application_name=replica_name()
                )
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK]).fetchone()
        except psycopg.Error as exc:
            log.debug("leader lock attempt failed: %s", exc)
            self._drop()
            return False
        self.is_leader = bool(row and row[0])
        return self.is_leader

    def still_held(self) -> bool:
        import psycopg

        try:
            self._conn.execute("SELECT 1")
        except (psycopg.Error, AttributeError) as exc:
            log.warning("lost the leader lock's connection: %s", exc)
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.is_leader = False
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def release(self) -> None:
        self._drop()


def leadership_for(backend: LogBackend, url: object) -> Leadership:
    if backend.shared and isinstance(url, str):
        return AdvisoryLeadership(url)
    return SoloLeadership()


class LeaderLoop:
    """Runs the election; calls `on_elected`/`on_lost` on changes and `follow` meanwhile."""

    def __init__(
        self,
        leadership: Leadership,
        interval: float,
        *,
        on_elected: Hook,
        on_lost: Hook,
        follow: Hook,
        errors: tuple[type[BaseException], ...] = (OSError, RuntimeError),
    ) -> None:
        self.leadership = leadership
        self._errors = errors
        self._leading = False
        self._interval = interval
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._follow = follow
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def start(self) -> None:
        """One election at once (a solo process is leader before it serves), then a task.
        A shared database down at start does not stop the replica: it serves as a follower
        and the task tries again every interval."""
        solo = isinstance(self.leadership, SoloLeadership)
        try:
            await self._step()
        except self._errors as exc:
            if solo:
                raise
            log.warning("first leader election failed, following until it works: %s", exc)
        if not solo:
            self._task = asyncio.create_task(self._run(), name="leader-election")

    async def _step(self) -> None:
        if self._leading:
            if not await asyncio.to_thread(self.leadership.still_held):
                self._leading = False
                log.warning("stepped down: the leader lock is lost; following")
                await self._on_lost()
            return
        if await asyncio.to_thread(self.leadership.try_acquire):
            self._leading = True
            if not isinstance(self.leadership, SoloLeadership):
                log.warning("elected leader (%s): this replica runs the loop", replica_name())
            await self._on_elected()
            return
        await self._follow()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._step()
            except self._errors as exc:
                # A failing read (the database is down) must not end the election loop.
                log.warning("leader loop step failed: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.leadership.release)
