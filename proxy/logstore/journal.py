"""Bounded on-disk spill journal: JSONL files holding log records DuckDB could not take yet.

Records land here when the writer's queue is full or a DuckDB write fails; the
writer replays them once writes succeed again (also after a restart: files left
by a previous process are picked up). The total size is bounded by
``max_bytes``; past it `append` refuses records and the caller counts them as
dropped. Appends are flushed to the OS at once, so a killed process loses none; with
``fsync`` (``DISTILL_LOG_FSYNC``) they are also forced to the disk (and a new file's directory
entry with them), so a machine that loses power loses none either.

Layout under ``directory``: ``journal-<pid>-<ns>-<seq>.jsonl`` (oldest first by
name order within one process) and ``rejected.jsonl`` for rows DuckDB refused
for their content (kept for a human, never replayed). Adopted journals of a killed
process join them: ``durable-*`` files as ``journal-*``, held rows (``held-*``) as
``journal-~*``, which sort last.

Several processes may share the directory (``distill serve --workers N``): a file
is flock()ed by the process appending to it or replaying it, and a process replays
only files it can lock, i.e. files of no live process (left by a killed one) or
its own sealed ones.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

log = logging.getLogger(__name__)

_PREFIX = "journal-"
DURABLE_PREFIX = "durable-"  # DISTILL_LOG_DURABLE: rows not yet in the database
HELD_PREFIX = "held-"  # answered rows waiting for background work (`proxy.logstore.held`)
LAST_PREFIX = _PREFIX + "~"  # sorts after every other spill file: replayed last
_SUFFIX = ".jsonl"
REJECTED_NAME = "rejected.jsonl"


def encode_line(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record, default=str) + b"\n"


def sync_file(handle: IO[bytes]) -> None:
    """Forces a flushed file's data to the disk (fsync; fdatasync where there is one)."""
    getattr(os, "fdatasync", os.fsync)(handle.fileno())


def sync_directory(directory: Path) -> None:
    """Forces a directory's entries (a new file's name) to the disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpillJournal:
    """Thread-safe, size-bounded JSONL journal with file rotation."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        rotate_bytes: int | None = None,
        prefix: str = _PREFIX,
        fsync: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.rotate_bytes = rotate_bytes or max(64 * 1024, min(8 * 1024 * 1024, max_bytes // 8))
        self._lock = threading.Lock()
        self._seq = 0
        self._current: IO[bytes] | None = None
        self._current_path: Path | None = None
        self._current_bytes = 0
        self._claimed: tuple[Path, IO[bytes]] | None = None  # the file being replayed
        self._closed = False
        self.directory.mkdir(parents=True, exist_ok=True)
        self._size = sum(p.stat().st_size for p in self._files())

    @property
    def size_bytes(self) -> int:
        return self._size

    def has_pending(self) -> bool:
        return self._size > 0

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.prefix}*{_SUFFIX}"))

    def _open_new(self) -> IO[bytes]:
        self._seq += 1
        name = f"{self.prefix}{os.getpid()}-{time.time_ns():020d}-{self._seq:06d}{_SUFFIX}"
        self._current_path = self.directory / name
        self._current = self._current_path.open("ab")
        fcntl.flock(self._current, fcntl.LOCK_EX)  # a new file: nobody else holds it
        if self.fsync:
            sync_directory(self.directory)
        self._current_bytes = 0
        return self._current

    def _seal_locked(self) -> None:
        if self._current is not None:
            self._current.close()
        self._current = None
        self._current_path = None

    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Appends records in order until the bound is hit; returns how many were kept."""
        lines = [encode_line(r) for r in records]
        with self._lock:
            kept = 0
            for line in lines:
                if self._size + len(line) > self.max_bytes:
                    break
                handle = self._current
                if handle is None or self._current_bytes >= self.rotate_bytes:
                    self._seal_locked()
                    handle = self._open_new()
                handle.write(line)
                self._current_bytes += len(line)
                self._size += len(line)
                kept += 1
            if self._current is not None:
                self._current.flush()
                if self.fsync:
                    sync_file(self._current)
            if self._closed:
                # Rows after close are for the next start (maybe this same process): no lock.
                self._seal_locked()
            return kept

    def next_file(self) -> Path | None:
        """Oldest file ready for replay, locked for this process until `remove` or the next
        call; seals the file being appended to if it is the only one."""
        with self._lock:
            self._release_claim()
            files = [p for p in self._files() if p != self._current_path]
            if not files and self._current_path is not None and self._current_bytes > 0:
                files = [self._current_path]
                self._seal_locked()
            for path in files:
                if self._claim(path):
                    return path
            if not files:  # other processes may have replayed files counted at start
                self._size = self._current_bytes if self._current is not None else 0
            return None

    def _claim(self, path: Path) -> bool:
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # replayed by another process meanwhile
            return False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live process appends to it or replays it
            handle.close()
            return False
        if not path.exists():  # removed between the open and the lock
            handle.close()
            return False
        self._claimed = (path, handle)
        return True

    def _release_claim(self) -> None:
        claimed, self._claimed = self._claimed, None
        if claimed is not None:
            claimed[1].close()

    def read(self, path: Path) -> tuple[list[dict[str, Any]], int]:
        """Records of a sealed file and the number of unreadable lines (a torn last write)."""
        records: list[dict[str, Any]] = []
        bad = 0
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                bad += 1
        return records, bad

    def remove(self, path: Path) -> None:
        """Deletes a replayed file and releases its bytes from the bound."""
        with self._lock:
            size = path.stat().st_size
            path.unlink()
            self._size = max(0, self._size - size)
            if self._claimed is not None and self._claimed[0] == path:
                self._release_claim()

    def reject(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Keeps rows DuckDB refused for their content, within the same byte bound."""
        lines = [encode_line(r) for r in records]
        with self._lock:
            path = self.directory / REJECTED_NAME
            used = path.stat().st_size if path.exists() else 0
            kept: list[bytes] = []
            for line in lines:
                if used + len(line) > self.max_bytes:
                    break
                used += len(line)
                kept.append(line)
            with path.open("ab") as handle:
                handle.writelines(kept)
            return len(kept)

    def rescan(self) -> None:
        """Counts the files again (others were added to the directory: adopted orphans)."""
        with self._lock:
            self._size = sum(p.stat().st_size for p in self._files() if p.exists())

    def seal(self) -> Path | None:
        """Closes the file being appended to (the next append opens a new one); returns it."""
        with self._lock:
            path = self._current_path if self._current_bytes > 0 else None
            self._seal_locked()
            return path

    def discard(self, path: Path) -> None:
        """Deletes a sealed file whose rows are safe elsewhere (in the database)."""
        with self._lock:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            self._size = max(0, self._size - size)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._seal_locked()
            self._release_claim()


def adopt_orphans(directory: Path, prefix: str = DURABLE_PREFIX, target: str = _PREFIX) -> int:
    """Renames `prefix` files no live process holds into spill files (named `target`...), so
    the normal replay takes them (the rows a killed process had journaled before writing);
    returns how many. Held rows take `LAST_PREFIX`: replayed after their complete forms,
    which then win (a replay skips ids already present)."""
    adopted = 0
    for path in sorted(Path(directory).glob(f"{prefix}*{_SUFFIX}")):
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process is alive
                continue
            path.rename(path.with_name(target + path.name.removeprefix(prefix)))
            adopted += 1
    return adopted


def adopt_killed(directory: Path) -> int:
    """Adopts the durable journal and the held rows of killed processes (held ones last)."""
    return adopt_orphans(directory) + adopt_orphans(directory, HELD_PREFIX, LAST_PREFIX)
