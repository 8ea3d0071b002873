"""`BatchSink`: puts batches of log records into the log store, or into the spill journal.

Used only from the writer thread (except `spill`, which is thread-safe). It owns
the write connection (of whichever `LogBackend`: DuckDB or PostgreSQL) and decides,
per failure, what happens to the rows:

- a failure that says nothing about the rows (disk full, I/O error, lock, lost
  connection) spills the whole batch to the journal for a later replay;
- a failure caused by the rows (a bad value, a duplicate id) is isolated row by
  row: a duplicate id gets a suffix, an invalid row goes to ``rejected.jsonl``;
- only rows the journal cannot take are dropped, counted and logged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.logstore.backend import (
    Connect,
    DuckDBBackend,
    LogBackend,
    LogStoreUnavailable,
    connect_db,
)
from proxy.logstore.journal import SpillJournal
from proxy.logstore.reconnect import Reconnect
from proxy.logstore.rows import Columns, select_rows, to_columns
from proxy.logstore.schema import REQUEST_COLUMNS

log = logging.getLogger(__name__)

Record = Mapping[str, Any]

_CONVERT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OverflowError)
_PROBE_SECONDS = 5.0  # while DuckDB is failing and no rows arrive, how often replay probes it
_LOG_EVERY_SECONDS = 30.0


_ID = REQUEST_COLUMNS.index("id")
_REQUEST_ID = REQUEST_COLUMNS.index("request_id")
_ATTEMPT = REQUEST_COLUMNS.index("attempt")


def _next_attempt(backend: LogBackend, conn: Any, request_id: str) -> int:
    rows = backend.execute(
        conn,
        "SELECT coalesce(max(coalesce(attempt, 1)), 1) FROM requests "
        "WHERE request_id = ? OR id = ?",
        [request_id, request_id],
    )
    return int(rows[0][0]) + 1 if rows else 2


# Failures that say nothing about the rows: spill them and retry later. Reads through
# the PostgreSQL engine turn a lost connection into LogStoreUnavailable, so this tuple
# also covers them.
FAILURES: tuple[type[BaseException], ...] = DuckDBBackend.failures

__all__ = ["FAILURES", "BatchSink", "Connect", "LogStoreUnavailable", "connect_db"]


@dataclass
class Counters:
    written: int = 0
    spilled: int = 0
    replayed: int = 0
    dropped: int = 0
    write_errors: int = 0
    rejected: int = 0
    renamed: int = 0
    last_error: str | None = None
    last_drop_log: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class BatchSink:
    """The write side of the log store: the database first, the journal when it fails."""

    def __init__(self, backend: LogBackend, journal: SpillJournal, batch_size: int) -> None:
        self.backend = backend
        self.journal = journal
        self.counters = Counters()
        self.conn: Any = None
        self.healthy = True
        self._batch_size = batch_size
        self._next_probe = 0.0
        self._last_log = 0.0
        # A shared database (PostgreSQL) may be down at start or later: its reopening
        # backs off (the backend's `Reconnect`); a DuckDB file reopens on the next write.
        self.reconnect: Reconnect | None = getattr(backend, "reconnect", None)

    # --- connection ------------------------------------------------------------------
    def open(self) -> None:
        conn = self.backend.connect()
        try:
            self.backend.migrate(conn)
        except self.backend.failures:
            self.backend.discard(conn)
            raise
        self.conn = conn

    def open_or_retry(self) -> None:
        """Opens at start. A shared database that is unreachable is not fatal: the rows
        spill to the journal and the connection is retried with backoff."""
        if self.reconnect is None:
            self.open()
            return
        try:
            self.open()
        except self.backend.failures as exc:
            self.healthy = False
            self.reconnect.failed(exc)

    def retry_if_due(self) -> None:
        """Reconnects a lost shared database when its backoff allows, rows or not."""
        retry = self.reconnect
        if retry is None or self.conn is not None or not retry.down or not retry.due():
            return
        with contextlib.suppress(LogStoreUnavailable):
            self.require_conn()

    def require_conn(self) -> Any:
        if self.conn is None:
            retry = self.reconnect
            if retry is not None and not retry.due():
                raise LogStoreUnavailable(f"log database {retry.describe()}")
            try:
                self.open()
            except self.backend.failures as exc:
                if retry is not None:
                    retry.failed(exc)
                raise LogStoreUnavailable(f"cannot reopen the log store: {exc}") from exc
            if retry is not None:
                retry.succeeded()
        assert self.conn is not None
        return self.conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            self.backend.close(conn)
        except self.backend.failures as exc:
            log.warning("closing the log store: %s", exc)

    def reset(self) -> None:
        """Forgets a connection the engine declared dead; the next write reopens it."""
        self._reset_conn()

    def _reset_conn(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                self.backend.discard(conn)
            except self.backend.failures as exc:
                log.warning("closing the failed log connection: %s", exc)

    # --- writing ---------------------------------------------------------------------
    def write(self, records: Sequence[Record]) -> None:
        """Inserts one batch; on failure spills or isolates it (never raises)."""
        good, columns = self._convert(records)
        if not good:
            return
        try:
            self.backend.insert(self.require_conn(), columns, False)
        except self.backend.row_errors:
            self.counters.written += self._isolate(good, columns, ignore_conflicts=False)
            return
        except self.backend.failures as exc:
            self._failed(exc)
            self.spill(good)
            return
        self.healthy = True
        self.counters.written += len(good)

    def should_replay(self) -> bool:
        return self.journal.has_pending() and (self.healthy or time.monotonic() >= self._next_probe)

    def replay_one(self) -> bool:
        """Replays the oldest journal file; True when it was fully consumed."""
        path = self.journal.next_file()
        if path is None:
            return False
        raw, torn = self.journal.read(path)
        if torn:
            self.count_dropped(torn, f"{torn} unreadable line(s) in {path.name}")
        records, columns = self._convert(raw)
        try:
            conn = self.require_conn()
            for start in range(0, len(records), self._batch_size):
                rows = list(range(start, min(start + self._batch_size, len(records))))
                chunk = select_rows(columns, rows)
                try:
                    # OR IGNORE: rows of a chunk that got in before a crash or failure.
                    self.backend.insert(conn, chunk, True)
                except self.backend.row_errors:
                    self._isolate([records[i] for i in rows], chunk, ignore_conflicts=True)
        except self.backend.failures as exc:
            self._failed(exc)
            return False  # the file stays for the next attempt
        self.journal.remove(path)
        self.counters.replayed += len(records)
        self.healthy = True
        log.info("replayed %d spilled log rows from %s", len(records), path.name)
        return True

    def _convert(self, records: Sequence[Record]) -> tuple[list[Record], Columns]:
        try:
            return list(records), to_columns(records)
        except _CONVERT_ERRORS:
            good: list[Record] = []
            for record in records:
                try:
                    to_columns([record])
                    good.append(record)
                except _CONVERT_ERRORS as exc:
                    self._reject([record], exc)
            return good, to_columns(good)

    def _isolate(self, records: list[Record], columns: Columns, ignore_conflicts: bool) -> int:
        """Row-by-row fallback after a content error; returns rows inserted."""
        inserted = 0
        for i, record in enumerate(records):
            try:
                self._insert_single(select_rows(columns, [i]), ignore_conflicts)
                inserted += 1
            except self.backend.row_errors as exc:
                self._reject([record], exc)
            except self.backend.failures as exc:
                self._failed(exc)
                self.spill(records[i:])
                break
        return inserted

    def _insert_single(self, single: Columns, ignore_conflicts: bool) -> None:
        conn = self.require_conn()
        try:
            self.backend.insert(conn, single, ignore_conflicts)
        except self.backend.duplicate_errors:
            # Same id twice: a client retrying with its x-request-id. The row is kept as
            # the next attempt of that request (``<id>~<n>``, linked by request_id).
            original = single[_ID][0] or "missing-id"
            request_id = single[_REQUEST_ID][0] or original
            attempt = _next_attempt(self.backend, conn, request_id)
            single[_ID][0] = f"{request_id}~{attempt}"
            single[_REQUEST_ID][0] = request_id
            single[_ATTEMPT][0] = attempt
            try:
                self.backend.insert(conn, single, ignore_conflicts)
            except self.backend.duplicate_errors:
                # Only when a client's own ids collide with that form: keep the row anyway.
                single[_ID][0] = f"{request_id}~{attempt}~{uuid.uuid4().hex[:8]}"
                self.backend.insert(conn, single, ignore_conflicts)
            self.counters.renamed += 1
            log.info("request id %r logged again as attempt %d", request_id, attempt)

    # --- failure accounting ------------------------------------------------------------
    def _failed(self, exc: BaseException) -> None:
        c = self.counters
        c.write_errors += 1
        c.last_error = f"{type(exc).__name__}: {exc}"[:500]
        now = time.monotonic()
        if self.healthy or now - self._last_log >= _LOG_EVERY_SECONDS:
            log.error(
                "request log write failed, spilling to %s: %s", self.journal.directory, c.last_error
            )
            self._last_log = now
        self.healthy = False
        self._next_probe = now + _PROBE_SECONDS
        if self.backend.is_fatal(exc):
            self._reset_conn()

    def spill(self, records: Sequence[Record]) -> None:
        """Journal the records (thread-safe); what does not fit is dropped and counted."""
        try:
            kept = self.journal.append(records)
        except OSError as exc:
            kept = 0
            self.counters.last_error = f"spill journal: {exc}"[:500]
        with self.counters.lock:
            self.counters.spilled += kept
        if kept < len(records):
            self.count_dropped(len(records) - kept, "spill journal full or unwritable")

    def _reject(self, records: Sequence[Record], exc: BaseException) -> None:
        try:
            kept = self.journal.reject(records)
        except OSError as io_exc:
            kept = 0
            self.counters.last_error = f"rejected-rows file: {io_exc}"[:500]
        with self.counters.lock:
            self.counters.rejected += kept
        reason = f"{type(exc).__name__}: {exc}"[:300]
        log.error("request log refused %d row(s) (%s)", len(records), reason)
        if kept < len(records):
            self.count_dropped(len(records) - kept, "rejected-rows file full")

    def count_dropped(self, n: int, why: str) -> None:
        # Throttled: with a full journal under a flood this runs once per request.
        c = self.counters
        with c.lock:
            c.dropped += n
            total = c.dropped
            now = time.monotonic()
            loud = total == n or now - c.last_drop_log >= 1.0
            if loud:
                c.last_drop_log = now
        if loud:
            log.error("request log DROPPED %d row(s): %s (total dropped: %d)", n, why, total)
