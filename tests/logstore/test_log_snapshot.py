"""Parquet snapshots (what the trainer reads) and read-only opening."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import orjson
import pytest

from proxy.logstore.feedback import SNAPSHOT_COLUMNS
from proxy.logstore.schema import REQUEST_COLUMNS
from proxy.logstore.snapshot import export_snapshot, open_readonly
from proxy.logstore.writer import LogWriter
from tests.logstore.conftest import T0, WriterFactory, make_record


def _read(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect() as conn:
        return conn.execute(
            "SELECT id, request_json, teacher_logprobs_json, created_at "
            f"FROM read_parquet('{path}') ORDER BY id"
        ).fetchall()


def test_snapshot_round_trip_from_writer(make_writer: WriterFactory, tmp_path: Path) -> None:
    writer = make_writer()
    for i in range(5):
        writer.submit(make_record(i))
    writer.submit(make_record(5, store=False))
    writer.flush()
    dest = export_snapshot(writer, tmp_path / "snaps" / "all.parquet")
    assert dest == tmp_path / "snaps" / "all.parquet" and dest.exists()
    assert not list(dest.parent.glob(".*tmp"))
    rows = _read(dest)
    assert [r[0] for r in rows] == [f"req-{i:06d}" for i in range(5)]  # store=false left out
    assert orjson.loads(str(rows[2][1])) == make_record(2)["request_json"]
    assert orjson.loads(str(rows[2][2])) == make_record(2)["teacher_logprobs_json"]
    with duckdb.connect() as conn:
        names = [d[0] for d in conn.execute(f"SELECT * FROM read_parquet('{dest}')").description]
    assert names == [*REQUEST_COLUMNS, *SNAPSHOT_COLUMNS]  # + the latest feedback

    everything = export_snapshot(writer, tmp_path / "with.parquet", include_unstored=True)
    assert len(_read(everything)) == 6


def test_snapshot_since_from_connection(make_writer: WriterFactory, tmp_path: Path) -> None:
    writer = make_writer()
    for i in range(10):
        writer.submit(make_record(i))
    writer.close()
    with open_readonly(tmp_path / "log.duckdb") as conn:
        dest = export_snapshot(conn, tmp_path / "recent.parquet", since=T0 + timedelta(seconds=7))
    assert [r[0] for r in _read(dest)] == ["req-000007", "req-000008", "req-000009"]


def test_open_readonly_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_readonly(tmp_path / "missing.duckdb")
    LogWriter(tmp_path / "log.duckdb", tmp_path / "spill").start().close()
    with open_readonly(tmp_path / "log.duckdb") as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchall() == [(0,)]
        with pytest.raises(duckdb.Error):
            conn.execute("INSERT INTO requests (id) VALUES ('x')")


def test_open_readonly_while_a_server_process_writes(tmp_path: Path) -> None:
    # DuckDB's lock is per process; a second process must get a clear error.
    writer = LogWriter(tmp_path / "log.duckdb", tmp_path / "spill").start()
    try:
        code = (
            "import sys\n"
            "from proxy.logstore.snapshot import open_readonly\n"
            "from proxy.logstore.writer import LogStoreUnavailable\n"
            "try:\n    open_readonly(sys.argv[1])\n"
            "except LogStoreUnavailable as e:\n    print('locked:', e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "log.duckdb")],
            capture_output=True, text=True, timeout=60, check=True,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout  # fmt: skip
    finally:
        writer.close()
    assert out.startswith("locked:") and "distill serve" in out


def test_snapshot_by_task_and_without_excluded_tasks(
    make_writer: WriterFactory, tmp_path: Path
) -> None:
    writer = make_writer()
    tasks = ["intents", "secret", None, "intents", "secret", "extract"]
    for i, task in enumerate(tasks):
        writer.submit(make_record(i, task=task))
    writer.flush()
    ids = lambda path: [r[0] for r in _read(path)]  # noqa: E731
    everything = export_snapshot(writer, tmp_path / "all.parquet")
    assert len(ids(everything)) == 6
    one = export_snapshot(writer, tmp_path / "one.parquet", task="intents")
    assert ids(one) == ["req-000000", "req-000003"]
    kept = export_snapshot(writer, tmp_path / "kept.parquet", exclude_tasks=("secret",))
    # An excluded task's rows never reach a trainer; rows logged without a task stay.
    assert ids(kept) == ["req-000000", "req-000002", "req-000003", "req-000005"]
    both = export_snapshot(writer, tmp_path / "b.parquet", exclude_tasks=("secret", "extract"))
    assert ids(both) == ["req-000000", "req-000002", "req-000003"]
