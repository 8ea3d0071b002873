"""Held rows (answered, waiting for a background answer) are journaled until their complete
form is submitted; after a kill the replay keeps the complete form when there is one."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson

from proxy.logstore.held import HeldJournal
from proxy.logstore.journal import HELD_PREFIX, LAST_PREFIX, adopt_orphans
from proxy.logstore.writer import LogWriter
from tests.logstore.conftest import make_record


def _partial(i: int) -> dict[str, object]:
    # The row as it is when the response goes out: no student answer yet.
    return make_record(i, student_text=None, student_response_json=None)


def _held_files(spill: Path) -> list[Path]:
    return sorted(spill.glob(f"{HELD_PREFIX}*"))


def test_held_rows_stay_journaled_until_released(tmp_path: Path) -> None:
    journal = HeldJournal(tmp_path, max_bytes=1 << 20)
    first, second = journal.hold(_partial(1)), journal.hold(_partial(2))
    assert first is not None and first is second  # one file, two rows
    (path,) = _held_files(tmp_path)
    assert [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()] == [
        "req-000001",
        "req-000002",
    ]
    assert journal.rows_held == 2
    journal.release(first)
    journal.tidy()
    assert _held_files(tmp_path) == [path] and journal.rows_held == 1  # the second is still held
    journal.release(second)
    journal.tidy()
    assert _held_files(tmp_path) == [] and journal.rows_held == 0
    journal.hold(_partial(3))  # a new file after the tidy
    assert len(_held_files(tmp_path)) == 1
    journal.close()


def test_a_held_file_is_adopted_only_once_its_process_let_go(tmp_path: Path) -> None:
    journal = HeldJournal(tmp_path, max_bytes=1 << 20)
    journal.hold(_partial(1))
    assert adopt_orphans(tmp_path, HELD_PREFIX, LAST_PREFIX) == 0  # flock()ed: on its way
    journal.close()  # still held at close (a shutdown cut the background answer short)
    assert len(_held_files(tmp_path)) == 1
    assert adopt_orphans(tmp_path, HELD_PREFIX, LAST_PREFIX) == 1
    (adopted,) = tmp_path.glob("journal-*")
    assert adopted.name.startswith(LAST_PREFIX)
    assert adopted.name > "journal-99999999-99999999999999999999-999999.jsonl"  # replayed last


def test_rows_the_journal_cannot_take_are_counted(tmp_path: Path) -> None:
    journal = HeldJournal(tmp_path, max_bytes=10)
    assert journal.hold(_partial(1)) is None
    assert journal.unjournaled == 1 and journal.rows_held == 0
    journal.release(None)  # the caller releases whatever it got
    journal.close()


def test_replay_after_a_kill_keeps_the_complete_row(tmp_path: Path) -> None:
    # What a killed process leaves: its held rows (journaled first) and, for one of them,
    # the complete row in its durable journal. The complete one must win the replay.
    spill = tmp_path / "spill"
    spill.mkdir()
    lines = [orjson.dumps(_partial(1), default=str), orjson.dumps(_partial(2), default=str)]
    held = spill / f"{HELD_PREFIX}99999-{1:020d}-000001.jsonl"
    held.write_bytes(b"\n".join(lines) + b"\n")
    durable = spill / f"durable-99999-{2:020d}-000001.jsonl"
    durable.write_bytes(orjson.dumps(make_record(1), default=str) + b"\n")
    db = tmp_path / "log.duckdb"
    with LogWriter(db, spill, durable=True) as writer:
        writer.flush()
        assert writer.stats.replayed == 3
    rows = duckdb.connect(str(db), read_only=True).execute(
        "SELECT id, student_text FROM requests ORDER BY id"
    )
    assert rows.fetchall() == [("req-000001", "answer 1"), ("req-000002", None)]
    assert not list(spill.glob("*.jsonl"))


def test_the_writer_journals_held_rows_only_when_durable(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    with LogWriter(tmp_path / "a.duckdb", spill, durable=False) as writer:
        assert writer.held is None
    with LogWriter(tmp_path / "b.duckdb", spill, durable=True) as writer:
        assert writer.held is not None
        token = writer.held.hold(_partial(1))
        writer.flush()
        assert len(_held_files(spill)) == 1 and writer.stats.held == 1
        writer.submit(make_record(1))  # the complete row, durably journaled itself
        writer.held.release(token)
        writer.flush()  # the writer thread tidies on every drain
        assert _held_files(spill) == [] and writer.stats.held == 0
        count = writer.read(lambda c: c.execute("SELECT count(*) FROM requests").fetchone())
        assert count == (1,)
