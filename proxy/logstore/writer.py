"""`LogWriter`: the single, batched writer of the request log, off the request path.

One background thread owns the DuckDB connection used for writes. `submit` is a
validated ``deque.append`` (no lock, no I/O) callable from the asyncio loop or any
thread. The thread wakes every ``flush_interval`` seconds, or as soon as a batch
is full, and writes each batch with one INSERT (see `rows.insert_batch`).

Nothing is lost silently: when the queue is full, or a write fails (disk full, I/O
error, lock), rows go to the bounded spill journal (`journal.SpillJournal`) and
are replayed once DuckDB accepts writes again, also after a restart. Only when
the journal is full too are rows dropped; `stats.dropped` counts them and an
error is logged. Rows DuckDB refuses for their content are isolated one by one:
a duplicate id gets a suffix, an invalid value sends the row to
``rejected.jsonl`` (`stats.rejected`).

Other code never opens a second write connection: `execute` runs a statement on
the writer thread and returns a Future; `read`/`cursor` give in-process cursors on
the same database (MVCC: reads do not block the writer). From asyncio, call them
through ``await asyncio.to_thread(writer.read, fn)``.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from proxy.logstore.journal import SpillJournal
from proxy.logstore.rows import (
    COLUMN_SET,
    ROW_ERRORS,
    Columns,
    InsertBatch,
    insert_batch,
    select_rows,
    to_columns,
    unknown_keys,
)
from proxy.logstore.schema import migrate

if TYPE_CHECKING:
    from proxy.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Record = Mapping[str, Any]
Connect = Callable[[Path], duckdb.DuckDBPyConnection]

_WRITE_ERRORS: tuple[type[BaseException], ...] = (duckdb.Error, OSError)
_CONVERT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OverflowError)
_PROBE_SECONDS = 5.0  # while DuckDB is failing and idle, how often replay probes it
_LOG_EVERY_SECONDS = 30.0


class LogStoreUnavailable(RuntimeError):
    """The writer is not started, closed, or has no working connection."""


# Failures that say nothing about the rows (disk full, I/O, lock, lost connection):
# the rows are spilled and retried later.
_FAILURES: tuple[type[BaseException], ...] = (*_WRITE_ERRORS, LogStoreUnavailable)


@dataclass(frozen=True)
class LogWriterStats:
    queued: int  # rows accepted into the in-memory queue since start
    written: int  # rows inserted from the queue
    spilled: int  # rows written to the spill journal (queue full or write failure)
    replayed: int  # journal rows later inserted
    dropped: int  # rows lost because the journal was full or unwritable (each logged)
    write_errors: int  # failed DuckDB writes
    last_error: str | None
    rejected: int = 0  # rows DuckDB refused for their content (kept in rejected.jsonl)
    renamed: int = 0  # rows whose duplicate id got a suffix
    queue_depth: int = 0
    spill_bytes: int = 0
    alive: bool = False


def connect_db(path: Path) -> duckdb.DuckDBPyConnection:
    """Opens the log database for writing (DuckDB replays its WAL after a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path))


@dataclass
class _Command:
    future: Future[Any]
    sql: str | None = None  # None: a flush barrier
    params: Any = None


@dataclass
class _Counters:
    taken: int = 0
    written: int = 0
    spilled: int = 0
    replayed: int = 0
    dropped: int = 0
    write_errors: int = 0
    rejected: int = 0
    renamed: int = 0
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class LogWriter:
    """Batched, single-threaded writer of `requests` rows plus a spill journal."""

    def __init__(
        self,
        db_path: Path | str,
        spill_dir: Path | str,
        *,
        queue_size: int = 10_000,
        flush_interval: float = 0.5,
        batch_size: int = 1_000,
        spill_max_bytes: int = 256 * 1024 * 1024,
        connect: Connect = connect_db,
        insert: InsertBatch = insert_batch,
    ) -> None:
        self.db_path = Path(db_path)
        self._queue_size = queue_size
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._connect = connect
        self._insert = insert
        self._journal = SpillJournal(Path(spill_dir), spill_max_bytes)
        self._queue: collections.deque[Record] = collections.deque()
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._counters = _Counters()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._healthy = True
        self._next_probe = 0.0
        self._last_log = 0.0
        self._last_drop_log = 0.0
        self._deadline = float("inf")

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> LogWriter:
        return cls(
            settings.db,
            settings.data_dir / "spill",
            queue_size=settings.log_queue_size,
            flush_interval=settings.log_flush_interval,
            batch_size=settings.log_batch_size,
            spill_max_bytes=settings.spill_max_bytes,
            **kwargs,
        )

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> LogWriter:
        """Opens (and migrates) the database, then starts the writer thread."""
        if self._thread is not None:
            raise RuntimeError("LogWriter already started")
        conn = self._connect(self.db_path)
        migrate(conn)
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="distill-log-writer", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> LogWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0) -> bool:
        """Drains the queue, flushes, checkpoints and closes; False if it timed out."""
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._deadline = time.monotonic() + timeout
            self._stop.set()
            self._wake.set()
            thread.join(timeout)
        done = thread is None or not thread.is_alive()
        if done:
            # Rows appended while the thread finished its last drain: keep them for next start.
            leftovers = [self._queue.popleft() for _ in range(len(self._queue))]
            if leftovers:
                self._spill(leftovers)
            self._journal.close()
        else:
            log.error(
                "log writer did not finish within %.1fs; %d rows still queued",
                timeout,
                len(self._queue),
            )
        return done

    # --- request path ------------------------------------------------------------------
    def submit(self, record: Record) -> None:
        """Queues one `requests` row (dict keyed by column name). Never blocks on I/O
        except when the queue is full, where the row is appended to the spill journal.
        The caller must not mutate the dict afterwards."""
        if not COLUMN_SET.issuperset(record):
            raise ValueError(f"unknown request log columns: {unknown_keys(record)}")
        if self._closing or len(self._queue) >= self._queue_size:
            self._spill([record])
            return
        self._queue.append(record)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def stats(self) -> LogWriterStats:
        c = self._counters
        depth = len(self._queue)
        return LogWriterStats(
            queued=c.taken + depth,
            written=c.written,
            spilled=c.spilled,
            replayed=c.replayed,
            dropped=c.dropped,
            write_errors=c.write_errors,
            last_error=c.last_error,
            rejected=c.rejected,
            renamed=c.renamed,
            queue_depth=depth,
            spill_bytes=self._journal.size_bytes,
            alive=self._thread is not None and self._thread.is_alive(),
        )

    # --- other writes and reads ----------------------------------------------------------
    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Future[list[tuple[Any, ...]] | None]:
        """Runs one statement on the writer thread; the Future holds fetchall() (or None)."""
        return self._enqueue(_Command(Future(), sql, params))

    def flush(self, timeout: float | None = 30.0) -> None:
        """Writes everything submitted so far and replays the spill journal if DuckDB works."""
        self._enqueue(_Command(Future())).result(timeout)

    def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Calls fn with a fresh cursor on the same database (safe from any thread)."""
        with self.cursor() as cur:
            return fn(cur)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = self._conn
        if conn is None:
            raise LogStoreUnavailable("log store is not open")
        cur = conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def _enqueue(self, command: _Command) -> Future[Any]:
        if self._thread is None or self._stop.is_set():
            raise LogStoreUnavailable("log writer is not running")
        self._commands.put(command)
        self._wake.set()
        return command.future

    # --- writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                self._cycle()
            self._finish()
        finally:
            self._release()

    def _cycle(self) -> None:
        self._drain()
        self._run_commands()
        if self._journal.has_pending() and (self._healthy or time.monotonic() >= self._next_probe):
            self._replay_one()

    def _finish(self) -> None:
        while self._queue:
            self._drain()
        self._run_commands()
        while (
            self._healthy
            and self._journal.has_pending()
            and time.monotonic() < self._deadline - 1.0
            and self._replay_one()
        ):
            pass

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.warning("checkpoint on close failed: %s", exc)
        conn.close()

    def _drain(self) -> None:
        # Only what is queued now: a sustained flood must not starve commands and replay.
        remaining = len(self._queue)
        while remaining > 0:
            n = min(self._batch_size, remaining)
            batch = [self._queue.popleft() for _ in range(n)]
            remaining -= n
            self._counters.taken += n
            self._write(batch)

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if not command.future.set_running_or_notify_cancel():
                continue
            self._drain()
            if command.sql is None:
                while self._journal.has_pending() and self._replay_one():
                    pass
                command.future.set_result(None)
            else:
                self._execute(command)

    def _execute(self, command: _Command) -> None:
        try:
            cur = self._require_conn().execute(command.sql or "", command.params)
            command.future.set_result(cur.fetchall() if cur.description else None)
        except _FAILURES as exc:
            command.future.set_exception(exc)

    def _require_conn(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            try:
                conn = self._connect(self.db_path)
                migrate(conn)
            except _WRITE_ERRORS as exc:
                raise LogStoreUnavailable(f"cannot reopen the log store: {exc}") from exc
            self._conn = conn
        return self._conn

    # --- writing batches -------------------------------------------------------------------
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

    def _write(self, records: list[Record]) -> None:
        records, columns = self._convert(records)
        if not records:
            return
        try:
            self._insert(self._require_conn(), columns, False)
        except ROW_ERRORS:
            self._counters.written += self._isolate(records, columns, ignore_conflicts=False)
            return
        except _FAILURES as exc:
            self._write_failed(exc)
            self._spill(records)
            return
        self._healthy = True
        self._counters.written += len(records)

    def _isolate(self, records: list[Record], columns: Columns, ignore_conflicts: bool) -> int:
        """Row-by-row fallback after a content error; returns rows inserted."""
        inserted = 0
        for i, record in enumerate(records):
            single = select_rows(columns, [i])
            try:
                self._insert_single(single, ignore_conflicts)
                inserted += 1
            except ROW_ERRORS as exc:
                self._reject([record], exc)
            except _FAILURES as exc:
                self._write_failed(exc)
                self._spill(records[i:])
                break
        return inserted

    def _insert_single(self, single: Columns, ignore_conflicts: bool) -> None:
        conn = self._require_conn()
        try:
            self._insert(conn, single, ignore_conflicts)
        except duckdb.IntegrityError:
            # Same id twice (a client reusing x-request-id): keep the row under a new id.
            original = single[0][0] or "missing-id"
            single[0][0] = f"{original}~{uuid.uuid4().hex[:8]}"
            self._insert(conn, single, ignore_conflicts)
            self._counters.renamed += 1
            log.warning("duplicate request id %r logged as %r", original, single[0][0])

    def _replay_one(self) -> bool:
        """Replays the oldest journal file; True when it was fully consumed."""
        path = self._journal.next_file()
        if path is None:
            return False
        raw, torn = self._journal.read(path)
        if torn:
            self._count_dropped(torn, f"{torn} unreadable line(s) in {path.name}")
        records, columns = self._convert(raw)
        done = 0
        try:
            conn = self._require_conn()
            while done < len(records):
                chunk = list(range(done, min(done + self._batch_size, len(records))))
                self._insert_chunk(conn, [records[i] for i in chunk], select_rows(columns, chunk))
                done += len(chunk)
        except _FAILURES as exc:
            self._write_failed(exc)
            return False  # the file stays; chunks already in are ignored on the next try
        self._journal.remove(path)
        self._counters.replayed += len(records)
        self._healthy = True
        log.info("replayed %d spilled log rows from %s", len(records), path.name)
        return True

    def _insert_chunk(
        self, conn: duckdb.DuckDBPyConnection, records: list[Record], columns: Columns
    ) -> None:
        try:
            self._insert(conn, columns, True)
        except ROW_ERRORS:
            self._isolate(records, columns, ignore_conflicts=True)

    # --- failure accounting ---------------------------------------------------------------
    def _write_failed(self, exc: BaseException) -> None:
        c = self._counters
        c.write_errors += 1
        c.last_error = f"{type(exc).__name__}: {exc}"[:500]
        now = time.monotonic()
        if self._healthy or now - self._last_log >= _LOG_EVERY_SECONDS:
            log.error(
                "request log write failed, spilling to %s: %s",
                self._journal.directory,
                c.last_error,
            )
            self._last_log = now
        self._healthy = False
        self._next_probe = now + _PROBE_SECONDS
        if isinstance(exc, duckdb.FatalException | duckdb.ConnectionException):
            self._reset_conn()

    def _reset_conn(self) -> None:
        # A fatal error invalidates the database instance; reopen it on the next write.
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except duckdb.Error as exc:
                log.warning("closing the failed log connection: %s", exc)

    def _spill(self, records: Sequence[Record]) -> None:
        try:
            kept = self._journal.append(records)
        except OSError as exc:
            kept = 0
            self._counters.last_error = f"spill journal: {exc}"[:500]
        with self._counters.lock:
            self._counters.spilled += kept
        lost = len(records) - kept
        if lost:
            self._count_dropped(lost, "spill journal full or unwritable")

    def _reject(self, records: Sequence[Record], exc: BaseException) -> None:
        try:
            kept = self._journal.reject(records)
        except OSError as io_exc:
            kept = 0
            self._counters.last_error = f"rejected-rows file: {io_exc}"[:500]
        with self._counters.lock:
            self._counters.rejected += kept
        log.error(
            "request log refused %d row(s) (%s); kept in %s",
            len(records),
            f"{type(exc).__name__}: {exc}"[:300],
            self._journal.directory,
        )
        if kept < len(records):
            self._count_dropped(len(records) - kept, "rejected-rows file full")

    def _count_dropped(self, n: int, why: str) -> None:
        # Throttled: under a flood with a full journal this runs once per request.
        with self._counters.lock:
            self._counters.dropped += n
            total = self._counters.dropped
            now = time.monotonic()
            loud = total == n or now - self._last_drop_log >= 1.0
            if loud:
                self._last_drop_log = now
        if loud:
            log.error("request log DROPPED %d row(s): %s (total dropped: %d)", n, why, total)
