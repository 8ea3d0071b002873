"""DISTILL_LOG_FSYNC: every journal append (spill, durable, held) is forced to the disk
before it returns, and a new journal file's directory entry with it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proxy.logstore import held as held_module
from proxy.logstore import journal as journal_module
from proxy.logstore.held import HeldJournal
from proxy.logstore.journal import DURABLE_PREFIX, SpillJournal
from proxy.logstore.writer import LogWriter
from proxy.settings import Settings
from tests.logstore.conftest import make_record


class SyncSpy:
    """Counts the real fsync calls (they still run: the data must reach the file)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files: list[int] = []
        self.dirs: list[Path] = []
        real_file, real_dir = journal_module.sync_file, journal_module.sync_directory

        def sync_file(handle: object) -> None:
            self.files.append(handle.fileno())  # type: ignore[attr-defined]
            real_file(handle)  # type: ignore[arg-type]

        def sync_directory(directory: Path) -> None:
            self.dirs.append(directory)
            real_dir(directory)

        for module in (journal_module, held_module):
            monkeypatch.setattr(module, "sync_file", sync_file)
            monkeypatch.setattr(module, "sync_directory", sync_directory)


def test_spill_appends_are_synced_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SyncSpy(monkeypatch)
    plain = SpillJournal(tmp_path / "plain", max_bytes=1 << 20)
    plain.append([make_record(1)])
    assert spy.files == [] and spy.dirs == []
    synced = SpillJournal(tmp_path / "synced", max_bytes=1 << 20, fsync=True)
    synced.append([make_record(1), make_record(2)])  # one batch: one sync
    synced.append([make_record(3)])
    assert len(spy.files) == 2
    assert spy.dirs == [tmp_path / "synced"]  # the new file's name, once
    path = synced.next_file()
    assert path is not None
    records, torn = synced.read(path)
    assert [r["id"] for r in records] == ["req-000001", "req-000002", "req-000003"] and torn == 0


def test_held_rows_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SyncSpy(monkeypatch)
    journal = HeldJournal(tmp_path, max_bytes=1 << 20, fsync=True)
    token = journal.hold(make_record(1))
    assert token is not None and len(spy.files) == 1 and spy.dirs == [tmp_path]
    assert os.path.getsize(token.path) > 0
    journal.close()


def test_the_setting_reaches_every_journal_of_the_writer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, log_fsync=True)
    writer = LogWriter.from_settings(settings)
    journals = [writer._sink.journal, writer._durable]  # noqa: SLF001 - the wiring is the test
    assert all(j is not None and j.fsync for j in journals)
    assert writer.held is not None and writer.held.fsync
    assert writer._durable is not None and writer._durable.prefix == DURABLE_PREFIX  # noqa: SLF001
    assert not LogWriter.from_settings(Settings(data_dir=tmp_path)).held.fsync  # type: ignore[union-attr]
