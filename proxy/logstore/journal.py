"""Bounded on-disk spill journal: JSONL files holding log records DuckDB could not take yet.

Records land here when the writer's queue is full or a DuckDB write fails; the
writer replays them once writes succeed again (also after a restart: files left
by a previous process are picked up). The total size is bounded by
``max_bytes``; past it `append` refuses records and the caller counts them as
dropped. Appends are flushed to the OS at once, so a killed process loses none.

Layout under ``directory``: ``journal-<pid>-<ns>-<seq>.jsonl`` (oldest first by
name order within one process) and ``rejected.jsonl`` for rows DuckDB refused
for their content (kept for a human, never replayed).
"""

from __future__ import annotations

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
_SUFFIX = ".jsonl"
REJECTED_NAME = "rejected.jsonl"


def _encode(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record, default=str) + b"\n"


class SpillJournal:
    """Thread-safe, size-bounded JSONL journal with file rotation."""

    def __init__(self, directory: Path, max_bytes: int, rotate_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.rotate_bytes = rotate_bytes or max(64 * 1024, min(8 * 1024 * 1024, max_bytes // 8))
        self._lock = threading.Lock()
        self._seq = 0
        self._current: IO[bytes] | None = None
        self._current_path: Path | None = None
        self._current_bytes = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._size = sum(p.stat().st_size for p in self._files())

    @property
    def size_bytes(self) -> int:
        return self._size

    def has_pending(self) -> bool:
        return self._size > 0

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}"))

    def _open_new(self) -> IO[bytes]:
        self._seq += 1
        name = f"{_PREFIX}{os.getpid()}-{time.time_ns():020d}-{self._seq:06d}{_SUFFIX}"
        self._current_path = self.directory / name
        self._current = self._current_path.open("ab")
        self._current_bytes = 0
        return self._current

    def _seal_locked(self) -> None:
        if self._current is not None:
            self._current.close()
        self._current = None
        self._current_path = None

    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Appends records in order until the bound is hit; returns how many were kept."""
        lines = [_encode(r) for r in records]
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
            return kept

    def next_file(self) -> Path | None:
        """Oldest file ready for replay; seals the file being appended to if it is the only one."""
        with self._lock:
            files = [p for p in self._files() if p != self._current_path]
            if not files and self._current_path is not None and self._current_bytes > 0:
                files = [self._current_path]
                self._seal_locked()
            return files[0] if files else None

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

    def reject(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Keeps rows DuckDB refused for their content, within the same byte bound."""
        lines = [_encode(r) for r in records]
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

    def close(self) -> None:
        with self._lock:
            self._seal_locked()
