"""Where `distill stats` / `distill logs` get their data.

A running server owns the DuckDB file (one writing process), so the CLI asks its admin
API first (``server_url``, ``DISTILL_ADMIN_KEY`` as Bearer). Only when nothing answers
there does it open the file itself, read-only, and build the same documents with the
same functions (`observability.reports`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb
import httpx

from proxy.logstore.backend import describe_log
from proxy.logstore.snapshot import open_readonly
from proxy.observability import reports
from proxy.observability.window import parse_since
from proxy.settings import Settings

T = TypeVar("T")
_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class SourceError(RuntimeError):
    """Neither the server nor the file could answer; the message says why."""


@dataclass
class Answer:
    data: Any
    origin: str  # "server <url>" or "file <path>"


class StatsSource:
    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self._client = client

    def _headers(self) -> dict[str, str]:
        key = self.settings.admin_key
        return {"authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def _get(self, path: str, params: dict[str, Any]) -> Any | None:
        """The server's JSON answer, or None when no server is listening."""
        url = self.settings.server_url.rstrip("/") + path
        client = self._client or httpx.Client(timeout=_TIMEOUT)
        try:
            response = client.get(url, params=params, headers=self._headers())
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return None
        except httpx.HTTPError as exc:
            raise SourceError(f"the server at {self.settings.server_url} failed: {exc}") from exc
        finally:
            if self._client is None:
                client.close()
        if response.status_code in (401, 403):
            raise SourceError(
                f"the server at {self.settings.server_url} refused the admin request "
                f"({response.status_code}): set DISTILL_ADMIN_KEY to its admin key"
            )
        if response.status_code >= 400:
            raise SourceError(f"the server answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def _from_file(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> Answer:
        try:
            conn = open_readonly(self.settings.db)
        except (FileNotFoundError, RuntimeError, duckdb.Error) as exc:
            raise SourceError(
                f"no server at {self.settings.server_url} and the log file cannot be read: {exc}"
            ) from exc
        try:
            return Answer(fn(conn), describe_log(self.settings.db))
        finally:
            conn.close()

    def stats(self, since: str) -> Answer:
        window = parse_since(since)  # fails fast on a bad --since, before any I/O
        data = self._get("/admin/stats", {"since": since})
        if data is not None:
            return Answer(data, f"server {self.settings.server_url}")
        return self._from_file(
            lambda conn: reports.note_teacher(reports.stats_report(conn, window), None)
        )

    def breakdown(self, by: str, since: str) -> Answer:
        from proxy.observability.breakdown import breakdown

        window = parse_since(since)
        data = self._get("/admin/breakdown", {"by": by, "since": since})
        if data is not None:
            return Answer(data, f"server {self.settings.server_url}")
        return self._from_file(lambda conn: breakdown(conn, by, window))

    def tasks(self, since: str) -> Answer:
        """The per-task table (`GET /admin/tasks`), from the server or the file."""
        from proxy.observability import task_stats

        window = parse_since(since)
        data = self._get("/admin/tasks", {"since": since})
        if data is not None:
            return Answer(data, f"server {self.settings.server_url}")
        overrides = self.settings.tasks
        mode = self.settings.calibration_mode

        def from_file(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
            report = task_stats.task_report(conn, window, overrides)
            return task_stats.attach_serving(report, task_stats.serving_from_log(conn, mode))

        return self._from_file(from_file)

    def logs(self, limit: int, after: tuple[str, str] | None = None) -> Answer:
        params: dict[str, Any] = {"n": limit}
        if after is not None:
            params.update(after_ts=after[0], after_id=after[1])
        data = self._get("/admin/logs", params)
        if data is not None:
            return Answer(data["rows"], f"server {self.settings.server_url}")
        return self._from_file(lambda conn: reports.logs_report(conn, limit, after))
