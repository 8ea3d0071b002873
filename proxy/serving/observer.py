"""The seam between request handling and accounting: the chat service calls an
observer when a request finishes (before its row is logged) and on retries.
Metrics and cost accounting implement it; tests can pass a recording one."""

from __future__ import annotations

from typing import Any, Protocol


class RequestObserver(Protocol):
    def on_finish(self, record: dict[str, Any]) -> None:
        """Called once per request with its complete log row; may add columns (costs)."""

    def on_upstream_retry(self, upstream: str, kind: str) -> None:
        """Called for every retry of an upstream call."""

    def on_upstream_error(self, upstream: str, kind: str) -> None:
        """Called for every failed upstream call."""


class NullObserver:
    def on_finish(self, record: dict[str, Any]) -> None:
        return None

    def on_upstream_retry(self, upstream: str, kind: str) -> None:
        return None

    def on_upstream_error(self, upstream: str, kind: str) -> None:
        return None
