"""The loop's rows in the log database: `runs`, `student_versions`, `task_thresholds`.

Writes go through the log writer's thread (`LogWriter.execute`, the single DuckDB writer);
reads use its in-process cursors. Every method is async and never blocks the event loop.
Timestamps are naive UTC, like the request log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import duckdb
import orjson

from proxy.logstore import queries

T = TypeVar("T")

RUN_COLUMNS = (
    "id", "created_at", "started_at", "finished_at", "status", "trigger", "reason",
    "config_json", "metrics_json", "adapter_path", "report_path", "pid", "task",
)  # fmt: skip
LIVE_STATUSES = ("running", "evaluating")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@dataclass(frozen=True)
class VersionRow:
    """A promoted (or base) student version as stored in `student_versions`."""

    name: str
    run_id: str | None
    adapter_path: str | None
    activated_at: datetime | None
    active: bool
    threshold: float | None
    calibration: dict[str, Any] | None
    closed_set: tuple[str, ...] | None
    prompt_prefix: str | None
    task: str | None = None
    """The task it serves; None: all traffic (scope `all`, or a row from before tasks)."""


_VERSION_SELECT = (
    "SELECT name, run_id, adapter_path, activated_at, active, threshold, "
    "CAST(calibration_json AS VARCHAR), CAST(closed_set_json AS VARCHAR), prompt_prefix, task "
    "FROM student_versions"
)
_SAME_TASK = "task IS NOT DISTINCT FROM ?"


def _version(row: Sequence[Any]) -> VersionRow:
    name, run_id, path, activated, active, threshold, calibration, closed, prefix, task = row
    closed_list = orjson.loads(closed) if closed else None
    return VersionRow(
        name=name, run_id=run_id, adapter_path=path, activated_at=activated,
        active=bool(active), threshold=threshold,
        calibration=orjson.loads(calibration) if calibration else None,
        closed_set=tuple(closed_list) if closed_list else None, prompt_prefix=prefix, task=task,
    )  # fmt: skip


class LoopStore:
    """Async access to `runs` and `student_versions` through the log writer."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    async def _execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]] | None:
        return await asyncio.wrap_future(self._writer.execute(sql, params))

    async def _read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return await asyncio.to_thread(self._writer.read, fn)

    async def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Runs a read-only query function on a cursor of the log (off the event loop)."""
        return await self._read(fn)

    async def flush(self) -> None:
        """Waits until the rows queued so far are written (a choice reads the newest)."""
        await asyncio.to_thread(self._writer.flush)

    # --- runs --------------------------------------------------------------------------
    async def insert_run(
        self,
        run_id: str,
        trigger: str,
        status: str,
        *,
        reason: str | None = None,
        config: dict[str, Any] | None = None,
        task: str | None = None,
    ) -> None:
        now = utcnow()
        started = now if status in LIVE_STATUSES else None
        finished = None if status in LIVE_STATUSES else now
        await self._execute(
            "INSERT INTO runs (id, created_at, started_at, finished_at, status, trigger, reason, "
            "config_json, task) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, now, started, finished, status, trigger, reason, _json(config), task],
        )

    async def update_run(self, run_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown runs columns: {sorted(unknown)}")
        if fields.get("status") not in (None, *LIVE_STATUSES) and "finished_at" not in fields:
            fields["finished_at"] = utcnow()
        values = [_json(v) if k.endswith("_json") else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        await self._execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*values, run_id])

    async def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return await self._read(lambda cur: queries.runs(cur, limit))

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        def query(cur: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
            cur.execute("SELECT * FROM runs WHERE id = ?", [run_id])
            names = [d[0] for d in cur.description or ()]
            row = cur.fetchone()
            if row is None:
                return None
            out = {
                n: v.isoformat() if isinstance(v, datetime) else v
                for n, v in zip(names, row, strict=True)
            }
            for key in ("config_json", "metrics_json"):
                if isinstance(out.get(key), str):
                    out[key] = orjson.loads(out[key])
            return out

        return await self._read(query)

    async def fail_live_runs(self, reason: str) -> list[tuple[str, int | None]]:
        """Marks runs left running/evaluating (by a previous process) failed; returns them."""
        rows = await self._read(
            lambda cur: cur.execute(
                "SELECT id, pid FROM runs WHERE status IN ('running', 'evaluating')"
            ).fetchall()
        )
        for run_id, _pid in rows:
            await self.update_run(run_id, status="failed", reason=reason)
        return [(str(r), p) for r, p in rows]

    async def last_run_created_at(self) -> datetime | None:
        """When the newest run that actually ran (not a skipped trigger) was started."""
        row = await self._read(
            lambda cur: cur.execute(
                "SELECT max(created_at) FROM runs WHERE status <> 'skipped'"
            ).fetchone()
        )
        return row[0] if row else None

    async def teacher_rows_since(self, since: datetime | None) -> int:
        """Requests the teacher answered (served or shadow) since `since` (all when None)."""
        where = "teacher_text IS NOT NULL AND store IS NOT FALSE"
        params: list[Any] = []
        if since is not None:
            where += " AND created_at >= ?"
            params.append(since)
        row = await self._read(
            lambda cur: cur.execute(
                f"SELECT count(*) FROM requests WHERE {where}", params
            ).fetchone()
        )
        return int(row[0]) if row else 0

    # --- student versions -----------------------------------------------------------------
    async def save_version(self, row: VersionRow) -> None:
        await self._execute(
            # ON CONFLICT rather than INSERT OR REPLACE: PostgreSQL has only this form.
            "INSERT INTO student_versions (name, run_id, adapter_path, created_at, "
            "activated_at, active, threshold, calibration_json, closed_set_json, prompt_prefix, "
            "task) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "run_id = excluded.run_id, adapter_path = excluded.adapter_path, "
            "created_at = excluded.created_at, activated_at = excluded.activated_at, "
            "active = excluded.active, threshold = excluded.threshold, "
            "calibration_json = excluded.calibration_json, "
            "closed_set_json = excluded.closed_set_json, prompt_prefix = excluded.prompt_prefix, "
            "task = excluded.task",
            [
                row.name,
                row.run_id,
                row.adapter_path,
                utcnow(),
                row.activated_at,
                row.active,
                row.threshold,
                _json(row.calibration),
                _json(list(row.closed_set)) if row.closed_set else None,
                row.prompt_prefix,
                row.task,
            ],
        )

    async def activate(self, name: str) -> None:
        """Makes `name` the one active version of its task (it must exist); the rows of
        other tasks keep theirs."""
        await self._execute(
            "UPDATE student_versions SET active = (name = ?), "
            "activated_at = CASE WHEN name = ? THEN ? ELSE activated_at END "
            "WHERE task IS NOT DISTINCT FROM (SELECT task FROM student_versions WHERE name = ?)",
            [name, name, utcnow(), name],
        )

    async def deactivate_task(self, task: str) -> None:
        """The task serves the base model again (a task has no base row of its own: the
        base model's name is one row for all)."""
        await self._execute("UPDATE student_versions SET active = false WHERE task = ?", [task])

    async def set_calibration(
        self, name: str, threshold: float | None, calibration: dict[str, Any]
    ) -> None:
        await self._execute(
            "UPDATE student_versions SET threshold = ?, calibration_json = ? WHERE name = ?",
            [threshold, _json(calibration), name],
        )

    async def get_version(self, name: str) -> VersionRow | None:
        row = await self._read(
            lambda cur: cur.execute(f"{_VERSION_SELECT} WHERE name = ?", [name]).fetchone()
        )
        return _version(row) if row else None

    async def active_and_previous(
        self, task: str | None = None
    ) -> tuple[VersionRow | None, VersionRow | None]:
        """The active version of `task` (None: the rows for all traffic) and the one active
        before it (newest activation first)."""
        rows = await self._read(
            lambda cur: cur.execute(
                f"{_VERSION_SELECT} WHERE activated_at IS NOT NULL AND {_SAME_TASK} "
                "ORDER BY active DESC, activated_at DESC LIMIT 2",
                [task],
            ).fetchall()
        )
        versions = [_version(r) for r in rows]
        active = versions[0] if versions and versions[0].active else None
        previous = versions[1] if active and len(versions) > 1 else None
        return active, previous

    async def last_activated(self, task: str) -> VersionRow | None:
        """The task's newest activated row (active or not): what a task at base rolls
        back to."""
        row = await self._read(
            lambda cur: cur.execute(
                f"{_VERSION_SELECT} WHERE activated_at IS NOT NULL AND task = ? "
                "ORDER BY activated_at DESC LIMIT 1",
                [task],
            ).fetchone()
        )
        return _version(row) if row else None

    async def version_tasks(self) -> list[str]:
        """The tasks with versions of their own, newest activation last."""
        rows = await self._read(
            lambda cur: cur.execute(
                "SELECT task FROM student_versions WHERE task IS NOT NULL "
                "GROUP BY task ORDER BY max(activated_at) NULLS FIRST, task"
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    async def set_task_threshold(
        self, task: str, name: str, threshold: float | None, calibration: dict[str, Any]
    ) -> None:
        """The threshold of `task` while it serves `name`, a version it does not own."""
        await self._execute(
            "INSERT INTO task_thresholds (task, name, threshold, calibration_json, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (task) DO UPDATE SET name = excluded.name, "
            "threshold = excluded.threshold, calibration_json = excluded.calibration_json, "
            "updated_at = excluded.updated_at",
            [task, name, threshold, _json(calibration), utcnow()],
        )

    async def task_thresholds(self) -> dict[str, tuple[str, float | None]]:
        """(version name, threshold) per task, for the tasks following a shared version."""
        rows = await self._read(
            lambda cur: cur.execute(
                "SELECT task, name, threshold FROM task_thresholds ORDER BY task"
            ).fetchall()
        )
        return {str(r[0]): (str(r[1]), None if r[2] is None else float(r[2])) for r in rows}

    async def active_names(self) -> dict[str | None, str]:
        """The active version's name per task (None: all traffic)."""
        rows = await self._read(
            lambda cur: cur.execute(
                "SELECT task, name FROM student_versions WHERE active"
            ).fetchall()
        )
        return {r[0]: str(r[1]) for r in rows}

    async def list_versions(self) -> list[VersionRow]:
        rows = await self._read(
            lambda cur: cur.execute(
                f"{_VERSION_SELECT} ORDER BY activated_at DESC NULLS LAST, name"
            ).fetchall()
        )
        return [_version(r) for r in rows]

    async def weak_spots(self, by: str) -> dict[str, Any]:
        """The log per label or tag: what the student serves and where it falls short
        (`proxy.observability.breakdown`, as `distill stats --by`); raises `duckdb.Error`
        or `LogStoreUnavailable` when the log cannot be read."""
        from proxy.observability.breakdown import breakdown

        return await self._read(lambda cur: breakdown(cur, by))

    async def logged_pairs(
        self, version: str, scorer: str, limit: int = 5000, *, task: str | None = None
    ) -> list[tuple[float | None, str | None, str | None, bool]]:
        """(confidence, student_text, teacher_text, shadow) of logged pairs of one version
        (of one task's requests, when given)."""
        where = "" if task is None else " AND task = ?"
        params: list[Any] = [version, scorer] + ([] if task is None else [task])

        def query(cur: duckdb.DuckDBPyConnection) -> list[Any]:
            return cur.execute(
                "SELECT confidence, student_text, teacher_text, coalesce(shadow, false) "
                "FROM requests WHERE student_version = ? AND scorer = ? "
                "AND student_text IS NOT NULL AND teacher_text IS NOT NULL "
                f"AND confidence IS NOT NULL AND store IS NOT FALSE{where} "
                "ORDER BY created_at DESC LIMIT ?",
                [*params, limit],
            ).fetchall()

        return await self._read(query)
