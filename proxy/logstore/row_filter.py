"""Which `requests` rows a snapshot takes: one filter, written as SQL for either engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from proxy.logstore.rows import utc_naive


@dataclass(frozen=True, slots=True)
class RowFilter:
    since: datetime | None = None
    """Rows created at or after this time (None: all)."""
    include_unstored: bool = False
    """Also rows a client sent with ``store: false`` (never for training or evaluation)."""
    task: str | None = None
    """Only this task's rows (a per-task run)."""
    exclude_tasks: tuple[str, ...] = ()
    """Never these tasks' rows (``[tasks.NAME] exclude = true``: never distilled, so never
    read by a trainer either). Rows without a task are kept."""

    def where(self, placeholder: str = "?", prefix: str = "") -> tuple[str, list[Any]]:
        """`` WHERE ...`` (or ``""``) and its parameters; `placeholder` is the engine's
        (``?`` DuckDB, ``%s`` psycopg), `prefix` the table alias with its dot."""
        where: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            where.append(f"{prefix}created_at >= {placeholder}")
            params.append(utc_naive(self.since))
        if self.task is not None:
            where.append(f"{prefix}task = {placeholder}")
            params.append(self.task)
        if self.exclude_tasks:
            marks = ", ".join(placeholder for _ in self.exclude_tasks)
            where.append(f"({prefix}task IS NULL OR {prefix}task NOT IN ({marks}))")
            params.extend(self.exclude_tasks)
        if not self.include_unstored:
            where.append(f"{prefix}store IS NOT FALSE")
        return (f" WHERE {' AND '.join(where)}" if where else ""), params
