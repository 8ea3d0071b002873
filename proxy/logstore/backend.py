"""The storage engine behind the log writer: what `BatchSink` and `LogWriter` ask of it.

Two engines implement `LogBackend`: `DuckDBBackend` below (the embedded default, one
process owns the file) and `proxy.logstore.postgres.PostgresBackend` (several
replicas write one database). The writer, the spill journal and the counters are
the same for both; only connecting, migrating, inserting a batch, running a
statement and reading differ. Every SQL text in the project is written in DuckDB's
dialect; the PostgreSQL engine translates it (`proxy.logstore.pgsql`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import duckdb

from proxy.logstore.rows import ROW_ERRORS, Columns, InsertBatch, insert_batch
from proxy.logstore.schema import migrate

Params = Sequence[Any] | Mapping[str, Any] | None
Connect = Callable[[Path], duckdb.DuckDBPyConnection]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(db: object) -> bool:
    """`DISTILL_DB` names a PostgreSQL database rather than a DuckDB file."""
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def describe_log(db: object) -> str:
    """Where the log is, for people: ``file PATH`` or ``PostgreSQL URL`` (no password)."""
    return (
        f"PostgreSQL {redact_url(db)}"
        if isinstance(db, str) and is_postgres_url(db)
        else f"file {db}"
    )


class LogStoreUnavailable(RuntimeError):
    """The log store is not open, closed, or cannot be (re)opened."""


class LogBackend(Protocol):
    """One storage engine. ``conn`` is the writer thread's own connection."""

    location: str  # for messages: a file path, or a URL without its password
    shared: bool  # several processes may write it at once
    row_errors: tuple[type[BaseException], ...]  # caused by the rows: isolate, never retry
    failures: tuple[type[BaseException], ...]  # say nothing about the rows: spill, retry
    duplicate_errors: tuple[type[BaseException], ...]

    def connect(self) -> Any: ...
    def migrate(self, conn: Any) -> int: ...
    def insert(self, conn: Any, columns: Columns, ignore_conflicts: bool) -> None: ...
    def execute(self, conn: Any, sql: str, params: Params) -> list[tuple[Any, ...]] | None: ...
    def reader(self, conn: Any) -> AbstractContextManager[Any]: ...
    def is_fatal(self, exc: BaseException) -> bool: ...
    def close(self, conn: Any) -> None: ...
    def discard(self, conn: Any) -> None: ...


def connect_db(path: Path) -> duckdb.DuckDBPyConnection:
    """Opens the log database for writing (DuckDB replays its WAL after a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path))


class DuckDBBackend:
    """The embedded engine: one DuckDB file, written by this process only."""

    shared = False
    row_errors: tuple[type[BaseException], ...] = ROW_ERRORS
    failures: tuple[type[BaseException], ...] = (duckdb.Error, OSError, LogStoreUnavailable)
    duplicate_errors: tuple[type[BaseException], ...] = (duckdb.IntegrityError,)

    def __init__(
        self, path: Path, connect: Connect = connect_db, insert: InsertBatch = insert_batch
    ) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._connect = connect
        self._insert = insert

    def connect(self) -> duckdb.DuckDBPyConnection:
        return self._connect(self.path)

    def migrate(self, conn: duckdb.DuckDBPyConnection) -> int:
        return migrate(conn)

    def insert(self, conn: duckdb.DuckDBPyConnection, columns: Columns, ignore: bool) -> None:
        self._insert(conn, columns, ignore)

    def execute(
        self, conn: duckdb.DuckDBPyConnection, sql: str, params: Params
    ) -> list[tuple[Any, ...]] | None:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else None

    @contextmanager
    def reader(self, conn: duckdb.DuckDBPyConnection | None) -> Iterator[Any]:
        # A cursor of the writer's own database instance: MVCC, reads never block writes.
        if conn is None:
            raise LogStoreUnavailable("log store is not open")
        cur = conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def is_fatal(self, exc: BaseException) -> bool:
        # A fatal error invalidates the database instance; reopen it on the next write.
        return isinstance(exc, duckdb.FatalException | duckdb.ConnectionException)

    def close(self, conn: duckdb.DuckDBPyConnection) -> None:
        try:
            conn.execute("CHECKPOINT")  # next open need not replay a WAL
        except duckdb.Error:
            conn.close()
            raise
        conn.close()

    def discard(self, conn: duckdb.DuckDBPyConnection) -> None:
        conn.close()
