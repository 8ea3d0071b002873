"""`HeldJournal`: rows already answered whose log row still waits for background work.

A request the teacher answers during calibration (cold start) is complete only once
its background student answer is in, seconds after the client got its response; a
shadow call keeps a student-served row waiting the same way. With the durable journal
(``DISTILL_LOG_DURABLE``) such a row is journaled here when its response goes out
(`hold`), and forgotten once its complete form was submitted to the writer, which
journals that one in turn (`release`). A SIGKILL in between loses at most the background
answer, never the row: a restart adopts the files left here and replays them after every
other journal file (see `journal.adopt_orphans`), skipping rows already in the database,
so a row is logged once, complete when its completion was journaled.

Layout: ``held-<pid>-<ns>-<seq>.jsonl`` beside the spill journal. Each file stays open
and flock()ed until all of its rows are released, so neither this process's periodic
adoption nor another worker's takes a file whose rows are still on their way. The writer
thread deletes released files every flush interval (`tidy`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from proxy.logstore.journal import HELD_PREFIX, encode_line, sync_directory, sync_file

log = logging.getLogger(__name__)

_LOG_EVERY_SECONDS = 30.0


@dataclass(eq=False)
class HeldFile:
    """One journal file of held rows; `hold` returns it as the row's token."""

    path: Path
    handle: IO[bytes]
    size: int = 0
    open_rows: int = 0  # held rows not released yet


class HeldJournal:
    """Thread-safe (the event loop holds and releases, the writer thread tidies)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        rotate_bytes: int = 1024 * 1024,
        *,
        fsync: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.fsync = fsync  # DISTILL_LOG_FSYNC: every held row forced to the disk
        self.max_bytes = max_bytes
        self.rotate_bytes = rotate_bytes
        self.unjournaled = 0  # rows that could not be journaled (bound hit, disk error)
        self._lock = threading.Lock()
        self._current: HeldFile | None = None
        self._sealed: list[HeldFile] = []
        self._size = 0
        self._seq = 0
        self._last_log = float("-inf")
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def rows_held(self) -> int:
        """Rows journaled here whose complete form is not submitted yet."""
        with self._lock:
            files = [*self._sealed, *([self._current] if self._current else [])]
            return sum(f.open_rows for f in files)

    def hold(self, record: Mapping[str, Any]) -> HeldFile | None:
        """Journals the row as it is now; returns its token, None when it was not journaled
        (counted in `unjournaled`: the row is still logged, just not crash-safe)."""
        line = encode_line(record)
        with self._lock:
            try:
                if self._size + len(line) > self.max_bytes:
                    raise OSError(f"held-row journal full ({self.max_bytes} bytes)")
                held = self._writable()
                held.handle.write(line)
                held.handle.flush()
                if self.fsync:
                    sync_file(held.handle)
            except OSError as exc:
                self._failed(exc)
                return None
            held.size += len(line)
            held.open_rows += 1
            self._size += len(line)
            return held

    def release(self, token: HeldFile | None) -> None:
        """The row's complete form went to the writer (and its journal)."""
        if token is None:
            return
        with self._lock:
            token.open_rows = max(0, token.open_rows - 1)

    def tidy(self) -> None:
        """Deletes the files all of whose rows are released (the writer thread calls it)."""
        with self._lock:
            current = self._current
            if current is not None and current.open_rows == 0 and current.size > 0:
                self._sealed.append(current)
                self._current = None
            kept: list[HeldFile] = []
            for held in self._sealed:
                if held.open_rows > 0:
                    kept.append(held)
                else:
                    self._delete(held)
            self._sealed = kept

    def close(self) -> None:
        """Deletes what is released; files with rows still held stay for the next start."""
        self.tidy()
        with self._lock:
            files = [*self._sealed, *([self._current] if self._current else [])]
            for held in files:
                if held.open_rows == 0:
                    self._delete(held)
                else:
                    held.handle.close()  # unlocked: the next start adopts it
            self._sealed, self._current = [], None

    # --- internals (under the lock) ----------------------------------------------------
    def _writable(self) -> HeldFile:
        current = self._current
        if current is not None and current.size < self.rotate_bytes:
            return current
        if current is not None:
            self._sealed.append(current)  # still open and locked until its rows are released
            self._current = None
        self._seq += 1
        name = f"{HELD_PREFIX}{os.getpid()}-{time.time_ns():020d}-{self._seq:06d}.jsonl"
        path = self.directory / name
        handle = path.open("ab")
        fcntl.flock(handle, fcntl.LOCK_EX)  # a new file: nobody else holds it
        if self.fsync:
            sync_directory(self.directory)
        self._current = HeldFile(path, handle)
        return self._current

    def _delete(self, held: HeldFile) -> None:
        try:
            held.path.unlink(missing_ok=True)  # unlinked while locked: nobody adopts it
        except OSError as exc:  # kept: a replay after a restart skips its rows
            log.warning("could not delete %s: %s", held.path.name, exc)
        held.handle.close()
        self._size = max(0, self._size - held.size)

    def _failed(self, exc: OSError) -> None:
        self.unjournaled += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_SECONDS:
            self._last_log = now
            log.error("held log rows are not journaled (they are lost on a crash): %s", exc)
