"""The spill journal on its own: bound, rotation, torn lines, restart pickup."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from proxy.logstore.journal import SpillJournal
from proxy.logstore.writer import LogWriter
from tests.logstore.conftest import make_record


def test_bound_and_rotation(tmp_path: Path) -> None:
    sizes = [len(orjson.dumps(make_record(i), default=str)) + 1 for i in range(7)]
    journal = SpillJournal(tmp_path, max_bytes=sum(sizes[:5]), rotate_bytes=2 * min(sizes))
    assert journal.append([make_record(i) for i in range(7)]) == 5
    assert journal.size_bytes == sum(sizes[:5])
    files = sorted(tmp_path.glob("journal-*.jsonl"))
    assert len(files) == 3  # 2 + 2 + 1 rows
    seen: list[str] = []
    while (path := journal.next_file()) is not None:
        records, torn = journal.read(path)
        assert torn == 0
        seen.extend(r["id"] for r in records)
        journal.remove(path)
    assert seen == [f"req-{i:06d}" for i in range(5)]
    assert journal.size_bytes == 0 and not journal.has_pending()
    assert journal.append([make_record(9)]) == 1  # room again


def test_torn_line_from_a_crash_is_counted_and_the_rest_replayed(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    good = orjson.dumps(make_record(1), default=str) + b"\n"
    (spill / "journal-1-00000000000000000001-000001.jsonl").write_bytes(good + good[:40])
    writer = LogWriter(tmp_path / "log.duckdb", spill, flush_interval=60).start()
    try:
        assert writer.stats.spill_bytes == len(good) + 40  # picked up from the last process
        writer.flush()
        stats = writer.stats
        assert (stats.replayed, stats.dropped, stats.spill_bytes) == (1, 1, 0)
        ids = writer.read(lambda cur: cur.execute("SELECT id FROM requests").fetchall())
        assert ids == [("req-000001",)]
    finally:
        writer.close()


def test_processes_sharing_a_directory_replay_only_unowned_files(tmp_path: Path) -> None:
    # `distill serve --workers N`: one spill directory, a file per live appender.
    first = SpillJournal(tmp_path, max_bytes=1 << 20)
    second = SpillJournal(tmp_path, max_bytes=1 << 20)
    assert first.append([make_record(1)]) == 1
    assert second.next_file() is None  # the first still appends to its file
    first.close()  # as if that process ended (a kill releases the lock the same way)
    claimed = second.next_file()
    assert claimed is not None
    records, _ = second.read(claimed)
    assert [r["id"] for r in records] == ["req-000001"]
    third = SpillJournal(tmp_path, max_bytes=1 << 20)
    assert third.next_file() is None  # the second is replaying it
    second.remove(claimed)
    assert third.next_file() is None and not third.has_pending()


def test_a_running_writer_replays_a_dead_processes_durable_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.logstore import writer as writer_module

    monkeypatch.setattr(writer_module, "_ADOPT_EVERY_SECONDS", 0.05)
    spill = tmp_path / "spill"
    writer = LogWriter(tmp_path / "log.duckdb", spill, flush_interval=0.05).start()
    try:
        # Left by a worker killed while this one runs (nobody holds its lock).
        line = orjson.dumps(make_record(42), default=str) + b"\n"
        (spill / "durable-99999-00000000000000000001-000001.jsonl").write_bytes(line)
        deadline = time.monotonic() + 5
        while writer.stats.replayed < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.stats.replayed == 1
        assert not list(spill.glob("durable-*")) and not list(spill.glob("journal-*"))
    finally:
        writer.close()
