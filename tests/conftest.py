"""Shared fixtures: a proxy with fake upstreams, served over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import openai
import pytest

from proxy.app import Transports, create_app
from proxy.settings import Settings
from tests.fakes import FakeUpstream
from tests.server_thread import running

TEACHER_KEY = "sk-teacher-SECRET-0123456789"


@dataclass
class ProxyHarness:
    url: str
    app: Any
    settings: Settings
    student: FakeUpstream
    teacher: FakeUpstream

    def client(self, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, **kwargs)

    def flush(self) -> None:
        self.app.state.writer.flush()

    def rows(self, where: str = "TRUE", at_least: int = 0) -> list[dict[str, Any]]:
        """Log rows, read through the server's own DuckDB database (it owns the file).

        `at_least` waits (up to 5 s) for that many rows: a streamed answer's row is queued
        after its last byte went out, so the client can finish before the server logs it.
        """
        import time

        def query(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            cur = conn.execute(f"SELECT * FROM requests WHERE {where} ORDER BY created_at")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        deadline = time.monotonic() + 5.0
        while True:
            self.flush()
            found: list[dict[str, Any]] = self.app.state.writer.read(query)
            if len(found) >= at_least or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)


def base_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "student_url": "http://student.test/v1",
        "student_model": "student-base",
        "teacher_url": "http://teacher.test/v1",
        "teacher_api_key": TEACHER_KEY,
        "db": tmp_path / "distill.duckdb",
        "data_dir": tmp_path / "data",
        "confidence_threshold": -0.5,
        "teacher_backoff": 0.01,
        "log_flush_interval": 0.05,
    }
    if "target_agreement" in overrides:
        # Asking for a target means calibration mode: no static threshold.
        values["confidence_threshold"] = None
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_proxy(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: `with make_proxy(student=..., teacher=..., **settings) as h:`."""

    @contextmanager
    def factory(
        student: FakeUpstream | None = None, teacher: FakeUpstream | None = None, **overrides: Any
    ) -> Iterator[ProxyHarness]:
        student = student or FakeUpstream(default_text="Paris")
        teacher = teacher or FakeUpstream(default_text="The capital is Paris.")
        settings = base_settings(tmp_path, **overrides)
        app = create_app(settings, Transports(student.transport(), teacher.transport()))
        with running(app) as url:
            harness = ProxyHarness(url, app, settings, student, teacher)
            _wait_student_ready(harness)
            yield harness

    yield factory


def _wait_student_ready(h: ProxyHarness, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if h.app.state.pool.available() or not h.settings.student_url:
            return
        time.sleep(0.02)
