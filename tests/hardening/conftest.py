"""Process-level fixtures: fake OpenAI servers on loopback and `distill serve` subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bench.banking77.stack import Server
from bench.soak.stack import ProxyConfig, start_distill, start_fake, stop_all

TEACHER_KEY = "sk-teacher-PLANTED-7c1e9a0b44"


@dataclass
class Fakes:
    student: Server
    teacher: Server
    logs: Path


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fakes]:
    logs = tmp_path_factory.mktemp("fake-logs")
    student = start_fake("student", logs)
    try:
        teacher = start_fake("teacher", logs, api_key=TEACHER_KEY)
    except BaseException:
        stop_all(student)
        raise
    try:
        yield Fakes(student, teacher, logs)
    finally:
        stop_all(student, teacher)


@pytest.fixture
def serve(fakes: Fakes, tmp_path: Path) -> Iterator[Callable[..., tuple[Server, ProxyConfig]]]:
    """Factory: `proxy, config = serve(DISTILL_X="1", ...)`; stopped at teardown."""
    started: list[Server] = []

    def factory(name: str = "proxy", **extra: str) -> tuple[Server, ProxyConfig]:
        config = ProxyConfig(
            fakes.student,
            fakes.teacher,
            TEACHER_KEY,
            tmp_path / "distill.duckdb",
            tmp_path / "data",
            extra,
        )
        proxy = start_distill(config, tmp_path / "logs", name=name)
        started.append(proxy)
        return proxy, config

    yield factory
    stop_all(*started)


def logged_ids(db: Path) -> set[str]:
    """Request ids in a DuckDB file no server holds (opening it replays its WAL)."""
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM requests").fetchall()}
    finally:
        conn.close()


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
