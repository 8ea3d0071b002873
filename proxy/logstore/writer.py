"""`LogWriter`: the single, batched writer of the request log, off the request path.

One background thread owns the connection used for writes (a DuckDB file, or a
PostgreSQL database shared by several replicas: see `proxy.logstore.backend`). `submit` is a
validated ``deque.append`` (no lock, no I/O) callable from the asyncio loop or any
thread. The thread wakes every ``flush_interval`` seconds, or as soon as a batch
is full, and writes each batch with one INSERT (see `rows.insert_batch`).

Nothing is lost silently (see `sink.BatchSink`): when the queue is full, or a
write fails (disk full, I/O error, lock), rows go to the bounded spill journal and
are replayed once DuckDB accepts writes again, also after a restart. Only when
the journal is full too are rows dropped; `stats.dropped` counts them and an
error is logged. After a SIGKILL at most the rows of the last flush interval are
lost (the journal is flushed to the OS on every append; DuckDB replays its WAL).
With ``durable=True`` (``DISTILL_LOG_DURABLE``) none are: `submit` also appends the row
to a ``durable-*`` journal file, which is deleted once its rows are in the database
(or spilled); a restart (or another worker on the same directory) replays what a
killed process left (duplicates are ignored by id). A row answered before it is complete
(its background answer pending) is journaled at once in `held` (`proxy.logstore.held`).

Other code never opens a second write connection: `execute` runs a statement on
the writer thread and returns a Future; `read`/`cursor` give in-process cursors on
the same database (MVCC: reads do not block the writer; with PostgreSQL they come
from a small pool of read connections and take DuckDB-dialect SQL like the rest).
From asyncio, call them through ``await asyncio.to_thread(writer.read, fn)``.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from proxy.logstore.backend import DuckDBBackend, LogBackend
from proxy.logstore.engines import backend_for
from proxy.logstore.held import HeldJournal
from proxy.logstore.journal import DURABLE_PREFIX, SpillJournal, adopt_killed
from proxy.logstore.rows import COLUMN_SET, InsertBatch, insert_batch, unknown_keys
from proxy.logstore.sink import (
    FAILURES,
    BatchSink,
    Connect,
    LogStoreUnavailable,
    Record,
    connect_db,
)

if TYPE_CHECKING:
    from proxy.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
_OVERFLOW_LOG_SECONDS = 30.0
_ADOPT_EVERY_SECONDS = 10.0

__all__ = ["LogStoreUnavailable", "LogWriter", "LogWriterStats", "connect_db"]


# Errors of an `execute` statement go to its Future (bad SQL/params are the caller's).
_EXECUTE_ERRORS: tuple[type[BaseException], ...] = (*FAILURES, TypeError, ValueError)


@dataclass(frozen=True)
class LogWriterStats:
    queued: int  # rows accepted into the in-memory queue since start
    written: int  # rows inserted from the queue
    spilled: int  # rows written to the spill journal (queue full or write failure)
    replayed: int  # journal rows later inserted
    dropped: int  # rows lost: the journal was full or unwritable (logged)
    write_errors: int  # failed DuckDB writes
    last_error: str | None
    rejected: int = 0  # rows DuckDB refused for their content (kept in rejected.jsonl)
    renamed: int = 0  # rows whose duplicate id got a suffix
    queue_depth: int = 0
    spill_bytes: int = 0  # journal bytes waiting for replay
    alive: bool = False  # the writer thread runs
    held: int = 0  # answered rows journaled while they wait for a background answer
    unjournaled: int = 0  # durable mode: rows the journal could not take (lost on a crash)


@dataclass
class _Command:
    future: Future[Any]
    sql: str | None = None  # None: a flush barrier
    params: Any = None


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
        backend: LogBackend | None = None,
        durable: bool = False,
        fsync: bool = False,
    ) -> None:
        self.backend = backend or backend_for(db_path, connect, insert)
        self.db_path = Path(db_path) if isinstance(self.backend, DuckDBBackend) else None
        self._queue_size = queue_size
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._spill_dir = Path(spill_dir)
        journal = SpillJournal(self._spill_dir, spill_max_bytes, fsync=fsync)
        self._sink = BatchSink(self.backend, journal, batch_size)
        self._durable = (
            SpillJournal(self._spill_dir, spill_max_bytes, prefix=DURABLE_PREFIX, fsync=fsync)
            if durable
            else None
        )
        self.held = HeldJournal(self._spill_dir, spill_max_bytes, fsync=fsync) if durable else None
        self._unjournaled = 0
        # Durable mode: a row's journal append and its queueing are one step, so each
        # drain knows which journal file holds exactly the rows it takes.
        self._durable_lock = threading.Lock()
        self._next_adoption = 0.0
        self._queue: collections.deque[Record] = collections.deque()
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._taken = 0
        self._closing = False
        self._deadline = float("inf")
        self._last_overflow_log = float("-inf")

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> LogWriter:
        return cls(
            settings.db,
            settings.data_dir / "spill",
            queue_size=settings.log_queue_size,
            flush_interval=settings.log_flush_interval,
            batch_size=settings.log_batch_size,
            spill_max_bytes=settings.spill_max_bytes,
            durable=settings.log_durable,
            fsync=settings.log_fsync,
            **kwargs,
        )

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> LogWriter:
        """Opens (and migrates) the database, then starts the writer thread."""
        if self._thread is not None:
            raise RuntimeError("LogWriter already started")
        self._adopt()
        self._sink.open_or_retry()  # PostgreSQL down: serve with the journal, retry
        self._thread = threading.Thread(target=self._run, name="distill-log-writer", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> LogWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0) -> bool:
        """Drains the queue, writes, checkpoints and closes; False if it timed out.
        Rows submitted after close go to the spill journal (replayed on next start)."""
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._deadline = time.monotonic() + timeout
            self._stop.set()
            self._wake.set()
            thread.join(timeout)
        if thread is not None and thread.is_alive():
            log.error(
                "log writer still busy after %.1fs; %d rows queued", timeout, len(self._queue)
            )
            return False
        # Rows appended while the thread did its last drain: keep them for the next start.
        leftovers = [self._queue.popleft() for _ in range(len(self._queue))]
        if leftovers:
            self._sink.spill(leftovers)
        self._sink.journal.close()
        if self._durable is not None:
            sealed = self._durable.seal()
            if sealed is not None:
                self._durable.discard(sealed)  # its rows are written or spilled by now
            self._durable.close()
        if self.held is not None:
            self.held.close()  # rows still held stay for the next start
        return True

    # --- request path ------------------------------------------------------------------
    def submit(self, record: Record) -> None:
        """Queues one `requests` row (a dict keyed by column name; missing keys are NULL).

        Non-blocking: when the queue is full the row is appended to the spill journal
        instead. Unknown keys raise ValueError (a programming error). The caller must
        not mutate the dict afterwards."""
        if not COLUMN_SET.issuperset(record):
            raise ValueError(f"unknown request log columns: {unknown_keys(record)}")
        if self._closing or len(self._queue) >= self._queue_size:
            self._overflow(record)
            return
        if self._durable is not None:
            with self._durable_lock:
                try:
                    self._durable.append([record])
                except OSError as exc:  # disk full: the row is still queued, just not durable
                    self._unjournaled += 1
                    self._durable_failed(exc)
                self._queue.append(record)
        else:
            self._queue.append(record)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def _durable_failed(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._last_overflow_log >= _OVERFLOW_LOG_SECONDS:
            self._last_overflow_log = now
            log.error("durable log journal unwritable, rows are not journaled: %s", exc)

    def _overflow(self, record: Record) -> None:
        self._sink.spill([record])
        now = time.monotonic()
        if now - self._last_overflow_log >= _OVERFLOW_LOG_SECONDS:
            self._last_overflow_log = now
            why = "writer closed" if self._closing else f"queue full ({self._queue_size} rows)"
            log.warning("request log %s: spilling rows to %s", why, self._sink.journal.directory)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def stats(self) -> LogWriterStats:
        c = self._sink.counters
        depth = len(self._queue)
        held = self.held
        return LogWriterStats(
            queued=self._taken + depth,
            written=c.written,
            spilled=c.spilled,
            replayed=c.replayed,
            dropped=c.dropped,
            write_errors=c.write_errors,
            last_error=c.last_error,
            rejected=c.rejected,
            renamed=c.renamed,
            queue_depth=depth,
            spill_bytes=self._sink.journal.size_bytes,
            alive=self._thread is not None and self._thread.is_alive(),
            held=held.rows_held if held else 0,
            unjournaled=self._unjournaled + (held.unjournaled if held else 0),
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

    def read(self, fn: Callable[[Any], T]) -> T:
        """Calls fn with a fresh cursor on the same database (safe from any thread)."""
        with self.cursor() as cur:
            return fn(cur)

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        if self._thread is None:
            raise LogStoreUnavailable("log store is not open")
        with self.backend.reader(self._sink.conn) as cur:
            yield cur

    def _enqueue(self, command: _Command) -> Future[Any]:
        if self._thread is None or self._stop.is_set():
            raise LogStoreUnavailable("log writer is not running")
        self._commands.put(command)
        self._wake.set()
        return command.future

    def _adopt(self) -> None:
        # A killed durable process's journal (this one's before a restart, or a worker's
        # sharing the directory) becomes spill files, which the replay then writes.
        self._next_adoption = time.monotonic() + _ADOPT_EVERY_SECONDS
        try:
            if adopt_killed(self._spill_dir):
                self._sink.journal.rescan()
        except OSError as exc:
            log.warning("could not adopt journal files in %s: %s", self._spill_dir, exc)

    # --- writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                self._drain()
                self._run_commands()
                if time.monotonic() >= self._next_adoption:
                    self._adopt()
                self._sink.retry_if_due()  # the database away: reconnect on its backoff
                if self._sink.should_replay():
                    self._sink.replay_one()
            self._finish()
        finally:
            self._sink.close()
            self._fail_pending_commands()

    def _fail_pending_commands(self) -> None:
        # A command that raced with close must not leave its caller waiting forever.
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if command.future.set_running_or_notify_cancel():
                command.future.set_exception(LogStoreUnavailable("log writer closed"))

    def _finish(self) -> None:
        while self._queue:
            self._drain()
        self._run_commands()
        sink = self._sink
        while (
            sink.healthy
            and sink.journal.has_pending()
            and time.monotonic() < self._deadline - 1.0
            and sink.replay_one()
        ):
            pass

    def _drain(self) -> None:
        # Only what is queued now: a sustained flood must not starve commands and replay.
        if self.held is not None:
            self.held.tidy()
        if self._durable is None:
            self._write_queued(len(self._queue))
            return
        with self._durable_lock:
            try:
                sealed = self._durable.seal()
            except OSError as exc:
                self._durable_failed(exc)
                sealed = None
            remaining = len(self._queue)
        self._write_queued(remaining)
        if sealed is not None:
            try:
                self._durable.discard(sealed)  # written, or spilled to the spill journal
            except OSError as exc:  # kept: a later replay skips its rows as duplicates
                self._durable_failed(exc)

    def _write_queued(self, remaining: int) -> None:
        while remaining > 0:
            n = min(self._batch_size, remaining)
            batch = [self._queue.popleft() for _ in range(n)]
            remaining -= n
            self._taken += n
            self._sink.write(batch)

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if not command.future.set_running_or_notify_cancel():
                continue
            self._drain()  # rows submitted before the command go in first
            if command.sql is None:
                while self._sink.journal.has_pending() and self._sink.replay_one():
                    pass
                command.future.set_result(None)
            else:
                self._execute(command)

    def _execute(self, command: _Command) -> None:
        try:
            conn = self._sink.require_conn()
            command.future.set_result(self.backend.execute(conn, command.sql or "", command.params))
        except (*self.backend.failures, *_EXECUTE_ERRORS) as exc:
            if self.backend.is_fatal(exc):
                self._sink.reset()
            command.future.set_exception(exc)
