"""LogWriter: batching, JSON round trip, spill/replay, back-pressure, drops, close."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from proxy.logstore.rows import Columns, insert_batch
from proxy.logstore.sink import connect_db
from proxy.logstore.writer import LogStoreUnavailable, LogWriter
from proxy.settings import Settings
from tests.logstore.conftest import T0, WriterFactory, count_rows, make_record


class FlakyInsert:
    """The writer's insert seam, failing like a full disk while `failing` is set."""

    def __init__(self, error: type[duckdb.Error] = duckdb.IOException) -> None:
        self.failing = True
        self.error = error
        self.calls = 0

    def __call__(self, conn: duckdb.DuckDBPyConnection, columns: Columns, ignore: bool) -> None:
        self.calls += 1
        if self.failing:
            raise self.error("No space left on device (simulated)")
        insert_batch(conn, columns, ignore)


def wait_until(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_flush_writes_rows_and_round_trips_json(make_writer: WriterFactory) -> None:
    writer = make_writer()
    records = [make_record(i) for i in range(3)]
    for record in records:
        writer.submit(record)
    writer.flush()
    rows = writer.read(
        lambda cur: cur.execute(
            "SELECT id, created_at, request_json, teacher_logprobs_json, stream, confidence, "
            "teacher_text, student_prompt_tokens FROM requests ORDER BY id"
        ).fetchall()
    )
    assert [r[0] for r in rows] == ["req-000000", "req-000001", "req-000002"]
    first = rows[0]
    assert first[1] == datetime(2025, 3, 1, 12, 0, 0)  # aware UTC in, naive UTC out
    assert orjson.loads(first[2]) == records[0]["request_json"]
    assert orjson.loads(first[3]) == records[0]["teacher_logprobs_json"]
    assert first[4] is True and first[5] == 0.0
    assert first[6] is None  # a missing key is NULL
    assert first[7] == 12
    stats = writer.stats
    assert (stats.queued, stats.written, stats.spilled, stats.dropped) == (3, 3, 0, 0)
    assert stats.alive and stats.queue_depth == 0


def test_json_text_is_stored_as_is(make_writer: WriterFactory) -> None:
    writer = make_writer()
    writer.submit(make_record(1, student_response_json='{"already": "json"}'))
    writer.flush()
    text = writer.read(
        lambda cur: cur.execute("SELECT student_response_json->>'already' FROM requests").fetchone()
    )
    assert text == ("json",)


def test_writes_on_interval_without_flush(make_writer: WriterFactory) -> None:
    writer = make_writer(flush_interval=0.05)
    writer.submit(make_record(1))
    assert wait_until(lambda: count_rows(writer) == 1)


def test_full_batch_is_written_before_the_interval(make_writer: WriterFactory) -> None:
    writer = make_writer(flush_interval=60, batch_size=10)
    for i in range(10):
        writer.submit(make_record(i))
    assert wait_until(lambda: count_rows(writer) == 10)


def test_unknown_key_raises(make_writer: WriterFactory) -> None:
    writer = make_writer()
    with pytest.raises(ValueError, match="not_a_column"):
        writer.submit({"id": "x", "not_a_column": 1})
    assert writer.stats.queued == 0


def test_write_failure_spills_then_replays(make_writer: WriterFactory, tmp_path: Path) -> None:
    flaky = FlakyInsert()
    writer = make_writer(insert=flaky, flush_interval=60)
    for i in range(5):
        writer.submit(make_record(i))
    writer.flush()
    stats = writer.stats
    assert stats.written == 0 and stats.spilled == 5 and stats.dropped == 0
    assert stats.write_errors >= 1 and "No space left" in (stats.last_error or "")
    assert stats.spill_bytes > 0 and list((tmp_path / "spill").glob("journal-*.jsonl"))
    assert count_rows(writer) == 0

    flaky.failing = False
    writer.submit(make_record(5))
    writer.flush()
    assert count_rows(writer) == 6
    stats = writer.stats
    assert (stats.written, stats.replayed, stats.spill_bytes) == (1, 5, 0)
    assert not list((tmp_path / "spill").glob("journal-*.jsonl"))
    got = writer.read(
        lambda cur: cur.execute(
            "SELECT request_json FROM requests WHERE id = 'req-000002'"
        ).fetchone()
    )
    assert got is not None and orjson.loads(got[0]) == make_record(2)["request_json"]


def test_fatal_error_reopens_connection(make_writer: WriterFactory) -> None:
    opened: list[Path] = []

    def connect(path: Path) -> duckdb.DuckDBPyConnection:
        opened.append(path)
        return connect_db(path)

    flaky = FlakyInsert(duckdb.FatalException)
    writer = make_writer(insert=flaky, connect=connect, flush_interval=60)
    writer.submit(make_record(1))
    writer.flush()
    assert writer.stats.spilled == 1 and writer.stats.written == 0
    flaky.failing = False
    writer.submit(make_record(2))
    writer.flush()
    assert len(opened) >= 2  # the invalidated connection was replaced
    assert count_rows(writer) == 2 and writer.stats.replayed == 1


def test_queue_full_spills_instead_of_dropping(
    make_writer: WriterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    writer = make_writer(queue_size=10, flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="proxy.logstore"):
        for i in range(25):
            writer.submit(make_record(i))
    stats = writer.stats
    assert (stats.queue_depth, stats.spilled, stats.dropped) == (10, 15, 0)
    assert [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    writer.flush()
    assert count_rows(writer) == 25
    assert writer.stats.replayed == 15


def test_dropped_counted_and_logged_when_journal_full(
    make_writer: WriterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    one_row = len(orjson.dumps(make_record(0), default=str)) + 1
    writer = make_writer(queue_size=10, flush_interval=60, spill_max_bytes=one_row * 3 + 10)
    with caplog.at_level(logging.ERROR, logger="proxy.logstore"):
        for i in range(20):
            writer.submit(make_record(i))
    stats = writer.stats
    assert stats.spilled == 3 and stats.dropped == 7
    assert any("DROPPED" in r.getMessage() for r in caplog.records)
    writer.flush()
    assert count_rows(writer) == 13


def test_close_drains_everything(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log.duckdb", tmp_path / "spill", flush_interval=60).start()
    for i in range(50):
        writer.submit(make_record(i))
    assert writer.close(timeout=5)
    assert not writer.stats.alive
    with duckdb.connect(str(tmp_path / "log.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone() == (50,)


def test_rows_after_close_survive_to_next_start(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log.duckdb", tmp_path / "spill").start()
    writer.close()
    writer.submit(make_record(7))
    assert writer.stats.spilled == 1
    with pytest.raises(LogStoreUnavailable):
        writer.flush()
    again = LogWriter(tmp_path / "log.duckdb", tmp_path / "spill").start()
    try:
        again.flush()
        assert count_rows(again) == 1 and again.stats.replayed == 1
    finally:
        again.close()


def test_execute_runs_statements_on_the_writer(make_writer: WriterFactory) -> None:
    writer = make_writer()
    done = writer.execute(
        "INSERT INTO runs (id, created_at, status, config_json) VALUES (?, ?, ?, ?)",
        ["run-1", T0, "queued", '{"epochs": 1}'],
    )
    assert done.result(5) == [(1,)]
    writer.execute("UPDATE runs SET status = 'done' WHERE id = ?", ["run-1"]).result(5)
    rows = writer.read(lambda cur: cur.execute("SELECT status FROM runs").fetchall())
    assert rows == [("done",)]
    failed = writer.execute("UPDATE no_such_table SET x = 1")
    with pytest.raises(duckdb.CatalogException):
        failed.result(5)
    assert writer.stats.alive


def test_duplicate_id_kept_under_new_id(make_writer: WriterFactory) -> None:
    writer = make_writer()
    writer.submit(make_record(1))
    writer.flush()
    writer.submit(make_record(1, student_text="second"))
    writer.submit(make_record(2))
    writer.flush()
    ids = writer.read(lambda cur: cur.execute("SELECT id FROM requests ORDER BY id").fetchall())
    assert len(ids) == 3 and ids[0] == ("req-000001",) and ids[1][0].startswith("req-000001~")
    assert writer.stats.renamed == 1 and writer.stats.dropped == 0


def test_invalid_row_rejected_rest_written(make_writer: WriterFactory, tmp_path: Path) -> None:
    writer = make_writer()
    writer.submit(make_record(1))
    writer.submit(make_record(2, request_json="{not json"))
    writer.submit(make_record(3, created_at="yesterday"))
    writer.submit(make_record(4))
    writer.flush()
    assert count_rows(writer) == 2
    assert writer.stats.rejected == 2 and writer.stats.dropped == 0
    rejected = (tmp_path / "spill" / "rejected.jsonl").read_text()
    assert "req-000002" in rejected and "req-000003" in rejected


def test_reads_concurrent_with_writes(make_writer: WriterFactory) -> None:
    writer = make_writer(flush_interval=0.01, batch_size=50)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                writer.read(lambda cur: cur.execute("SELECT count(*) FROM requests").fetchone())
            except duckdb.Error as exc:  # pragma: no cover - the failure we look for
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(500):
        writer.submit(make_record(i))
    writer.flush()
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and count_rows(writer) == 500


def test_usable_from_asyncio(make_writer: WriterFactory) -> None:
    writer = make_writer()

    async def main() -> int:
        for i in range(20):
            writer.submit(make_record(i))
        await asyncio.to_thread(writer.flush)
        return await asyncio.to_thread(count_rows, writer)

    assert asyncio.run(main()) == 20


def test_submit_is_cheap(make_writer: WriterFactory) -> None:
    writer = make_writer(flush_interval=60, queue_size=100_000, batch_size=100_000)
    records = [make_record(i) for i in range(5_000)]
    start = time.perf_counter()
    for record in records:
        writer.submit(record)
    per_call = (time.perf_counter() - start) / len(records)
    assert per_call < 20e-6, f"submit took {per_call * 1e6:.1f} us"
    assert writer.stats.spilled == 0


def test_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        db=tmp_path / "db" / "x.duckdb",
        data_dir=tmp_path / "data",
        log_queue_size=10,
        log_flush_interval=60,
        spill_max_bytes=1_000_000,
    )
    writer = LogWriter.from_settings(settings).start()
    try:
        for i in range(12):  # two past the queue: spilled under data_dir/spill
            writer.submit(make_record(i))
        assert writer.stats.spilled == 2
        assert list((tmp_path / "data" / "spill").glob("journal-*.jsonl"))
        writer.flush()
        assert count_rows(writer) == 12
    finally:
        writer.close()
    assert (tmp_path / "db" / "x.duckdb").exists()
