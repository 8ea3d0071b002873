"""The request log on a real PostgreSQL: migrations, the batched writer, reads, snapshots.

Every read the stats, the dashboard and the loop make is run on the same rows in DuckDB
and in PostgreSQL, and the answers must agree.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from proxy.logstore.pgsql import Translator
from proxy.logstore.postgres import PostgresBackend, migrate, open_reader
from proxy.logstore.schema import MIGRATIONS, REQUEST_COLUMNS
from proxy.logstore.snapshot import export_snapshot
from proxy.logstore.writer import LogWriter
from proxy.loop.store import LoopStore, VersionRow
from proxy.observability import reports
from tests.logstore.conftest import make_record

pytestmark = pytest.mark.postgres


def _writer(db: str | Path, tmp_path: Path, name: str) -> LogWriter:
    return LogWriter(db, tmp_path / f"spill-{name}", flush_interval=0.05).start()


@pytest.fixture
def writers(pg_url: str, tmp_path: Path) -> Iterator[tuple[LogWriter, LogWriter]]:
    """The same rows go to a DuckDB writer and a PostgreSQL writer."""
    duck = _writer(tmp_path / "log.duckdb", tmp_path, "duck")
    pg = _writer(pg_url, tmp_path, "pg")
    yield duck, pg
    duck.close(5)
    pg.close(5)


def _rounded(value: Any) -> Any:
    # Sums in another order differ in the last bits; nothing else may differ.
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _count(writer: LogWriter) -> int:
    row = writer.read(lambda cur: cur.execute("SELECT count(*) FROM requests").fetchone())
    return int(row[0])


def test_migrations_run_once_under_the_lock(pg_url: str) -> None:
    results: list[int] = []

    def run() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            results.append(migrate(conn, Translator()))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [MIGRATIONS[-1].version] * 4
    with psycopg.connect(pg_url) as conn:
        applied = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'requests' ORDER BY ordinal_position"
        ).fetchall()
    assert [v for (v,) in applied] == [m.version for m in MIGRATIONS]
    assert tuple(c for (c,) in columns) == REQUEST_COLUMNS


def test_writer_batches_duplicates_and_bad_rows(pg_url: str, tmp_path: Path) -> None:
    writer = _writer(pg_url, tmp_path, "pg")
    try:
        for i in range(2500):
            writer.submit(make_record(i))
        writer.submit(make_record(7))  # the same id again: kept under a new id
        writer.submit(make_record(9000, request_json="{not json"))  # refused, kept aside
        writer.submit(make_record(9001, student_text="nul \x00 byte"))
        writer.flush()
        stats = writer.stats
        assert _count(writer) == 2502
        assert stats.renamed == 1 and stats.rejected == 1 and stats.dropped == 0
    finally:
        writer.close(5)


def test_reads_agree_with_duckdb(writers: tuple[LogWriter, LogWriter]) -> None:
    duck, pg = writers
    for i in range(300):
        record = make_record(i, tag=f"t{i % 3}", teacher_text=f"answer {i}", shadow=i % 5 == 0)
        duck.submit(record)
        pg.submit(record)
    duck.flush()
    pg.flush()

    def report(writer: LogWriter) -> dict[str, Any]:
        out = writer.read(lambda cur: reports.dashboard_report(cur, None))
        out.pop("generated_at")
        return out

    assert _rounded(report(pg)) == _rounded(report(duck))
    after = ("2025-03-01T12:01:00", "req-000060")
    assert pg.read(lambda c: reports.logs_report(c, 20, after)) == duck.read(
        lambda c: reports.logs_report(c, 20, after)
    )


def test_loop_store_on_postgres(pg_url: str, tmp_path: Path) -> None:
    writer = _writer(pg_url, tmp_path, "pg")

    async def scenario() -> None:
        store = LoopStore(writer)
        await store.insert_run("run-1", "manual", "running", config={"a": 1})
        await store.update_run("run-1", status="promoted", metrics_json={"x": 2})
        row = VersionRow("v1", "run-1", "/a", None, False, 0.5, {"k": 1}, ("a", "b"), None)
        await store.save_version(row)
        await store.save_version(row)  # upsert, not a duplicate
        await store.activate("v1")
        active, previous = await store.active_and_previous()
        assert active is not None and active.name == "v1" and active.closed_set == ("a", "b")
        assert previous is None
        runs = await store.list_runs()
        assert runs[0]["status"] == "promoted" and runs[0]["metrics_json"] == {"x": 2}

    try:
        asyncio.run(scenario())
    finally:
        writer.close(5)


def _parquet(path: Path) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    with duckdb.connect() as conn:
        schema = conn.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        rows = conn.execute(f"SELECT * FROM read_parquet('{path}') ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in schema], rows


def test_snapshot_has_the_duckdb_format(
    writers: tuple[LogWriter, LogWriter], pg_url: str, tmp_path: Path
) -> None:
    duck, pg = writers
    for i in range(50):
        record = make_record(i, store=i % 10 != 0)
        duck.submit(record)
        pg.submit(record)
    duck.flush()
    pg.flush()
    from_duck = _parquet(export_snapshot(duck, tmp_path / "duck.parquet"))
    from_pg = _parquet(export_snapshot(pg, tmp_path / "pg.parquet"))
    assert from_pg[0] == from_duck[0]
    assert len(from_pg[1]) == 45
    assert from_pg[1] == from_duck[1]
    with open_reader(pg_url) as cur:  # the CLI's way: no server needed
        again = _parquet(export_snapshot(cur, tmp_path / "cli.parquet"))
    assert again == from_pg


def test_snapshot_filters_tasks_like_duckdb(
    writers: tuple[LogWriter, LogWriter], tmp_path: Path
) -> None:
    duck, pg = writers
    for i in range(30):
        record = make_record(i, task=(None, "intents", "secret")[i % 3])
        duck.submit(record)
        pg.submit(record)
    duck.flush()
    pg.flush()
    for name, kwargs in {
        "one": {"task": "intents"},
        "kept": {"exclude_tasks": ("secret",)},
    }.items():
        from_duck = _parquet(export_snapshot(duck, tmp_path / f"{name}-duck.parquet", **kwargs))
        from_pg = _parquet(export_snapshot(pg, tmp_path / f"{name}-pg.parquet", **kwargs))
        assert from_pg == from_duck
        assert len(from_pg[1]) == (10 if name == "one" else 20)


def test_backend_reports_a_lost_database_as_unavailable(tmp_path: Path) -> None:
    from proxy.logstore.backend import LogStoreUnavailable

    backend = PostgresBackend("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(backend.failures):
        backend.connect()
    with pytest.raises(LogStoreUnavailable), backend.reader() as cur:
        cur.execute("SELECT 1")


def test_distill_export_from_either_engine(
    writers: tuple[LogWriter, LogWriter], pg_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    from proxy.cli import main

    duck, pg = writers
    for i in range(20):
        duck.submit(make_record(i))
        pg.submit(make_record(i))
    duck.flush()
    pg.flush()
    duck.close(5)  # a DuckDB file is exported while no server owns it
    monkeypatch.setenv("DISTILL_DB", pg_url)
    assert main(["export", "--out", str(tmp_path / "pg.parquet"), "--since", "2025-03-01"]) == 0
    monkeypatch.setenv("DISTILL_DB", str(tmp_path / "log.duckdb"))
    assert main(["export", "--out", str(tmp_path / "duck.parquet")]) == 0
    assert _parquet(tmp_path / "pg.parquet") == _parquet(tmp_path / "duck.parquet")
    assert main(["export", "--out", str(tmp_path / "x.csv")]) == 2


def test_statements_answer_like_duckdb(pg_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from proxy.privacy.retention import purge_once

    writer = _writer(pg_url, tmp_path, "pg")
    try:
        for i in range(5):
            writer.submit(make_record(i, teacher_text="secret body"))
        writer.flush()
        done = writer.execute("UPDATE requests SET tag = ? WHERE id LIKE 'req-%'", ["t"])
        assert done.result(5) == [(5,)]  # the row count, as DuckDB returns it
        erased = asyncio.run(purge_once(writer, 1, now=datetime(2030, 1, 1, tzinfo=UTC)))
        assert erased == 5
        rows = writer.read(
            lambda c: c.execute("SELECT count(teacher_text) FROM requests").fetchall()
        )
        assert rows == [(0,)]
    finally:
        writer.close(5)


def test_open_writable_records_a_run_on_postgres(pg_url: str) -> None:
    from proxy.logstore.snapshot import open_writable

    with open_writable(pg_url) as conn:  # `distill train` without a server
        conn.execute("INSERT INTO runs (id, status, trigger) VALUES (?, 'running', 'cli')", ["r1"])
    with open_reader(pg_url) as cur:
        assert cur.execute("SELECT id, status FROM runs").fetchall() == [("r1", "running")]
