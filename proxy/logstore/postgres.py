"""`PostgresBackend`: the request log in PostgreSQL, written by every replica at once.

Same schema and migrations as DuckDB (`schema.MIGRATIONS`, translated by
`pgsql.translate`), applied once under an advisory lock so replicas starting together
do not race. Each replica's writer thread inserts its batches with one COPY (all rows
or none, like DuckDB's single INSERT); a replay of the spill journal goes through a
temporary table and ``ON CONFLICT DO NOTHING`` for rows that got in before a failure.
Reads use a small pool of separate connections (a psycopg connection runs one
statement at a time; the writer's must stay free for the writer).

A lost connection (the database restarted or unreachable) is a failure that says
nothing about the rows: the sink spills them and replays when the database is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from proxy.logstore.backend import LogStoreUnavailable, Params, redact_url
from proxy.logstore.pgsql import PgCursor, Translator, configure, params_list
from proxy.logstore.reconnect import Reconnect
from proxy.logstore.rows import Columns
from proxy.logstore.schema import (
    _BOOKKEEPING_DDL,
    MIGRATIONS,
    REQUEST_COLUMNS,
    Migration,
    _check_order,
)

log = logging.getLogger(__name__)

# pg_advisory_lock keys (bigint): one namespace for the project, one key per purpose.
MIGRATION_LOCK = 0x64697374_00000001
_COLUMN_LIST = ", ".join(REQUEST_COLUMNS)
_CONNECT_TIMEOUT = 5  # seconds; an unreachable database must not stall the writer long
_READ_POOL_SIZE = 4


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    # Timestamps are naive UTC throughout, so the session's time zone is UTC too
    # (now()::TIMESTAMP in the migrations and the loop's statements).
    conn = psycopg.connect(
        url, autocommit=autocommit, connect_timeout=_CONNECT_TIMEOUT, options="-c TimeZone=UTC"
    )
    configure(conn)
    return conn


def _schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(
    conn: psycopg.Connection[Any],
    translate: Translator,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> int:
    """Applies pending migrations in order, each in its own transaction, while holding the
    migration advisory lock; returns the schema version. Idempotent."""
    _check_order(migrations)
    conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
    try:
        conn.execute(translate(_BOOKKEEPING_DDL))
        version = _schema_version(conn)
        for migration in migrations:
            if migration.version <= version:
                continue
            log.info("applying schema migration %d (%s)", migration.version, migration.name)
            with conn.transaction():
                if callable(migration.sql):
                    # A callable step gets a translating cursor, so it stays dialect-free.
                    migration.sql(PgCursor(conn, translate))  # type: ignore[arg-type]
                else:
                    conn.execute(translate(migration.sql))
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES (%s, %s, (now() AT TIME ZONE 'UTC'))",
                    [migration.version, migration.name],
                )
            version = migration.version
    finally:
        if not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
    return version


def _is_dml(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("UPDATE", "DELETE", "INSERT")


def _clean(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; DuckDB can. Keep the row, mark the character.
    if type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def copy_rows(cur: psycopg.Cursor[Any], table: str, columns: Columns) -> None:
    with cur.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN") as copy:
        for row in zip(*columns, strict=True):
            copy.write_row([_clean(v) for v in row])


class PostgresBackend:
    """The shared engine: one PostgreSQL database, written by every replica."""

    shared = True
    row_errors: tuple[type[BaseException], ...] = (psycopg.DataError, psycopg.IntegrityError)
    failures: tuple[type[BaseException], ...] = (
        psycopg.Error,
        psycopg_pool.PoolTimeout,
        OSError,
        LogStoreUnavailable,
    )
    duplicate_errors: tuple[type[BaseException], ...] = (psycopg.errors.UniqueViolation,)

    def __init__(self, url: str, read_pool_size: int = _READ_POOL_SIZE) -> None:
        self.url = url
        self.location = redact_url(url)
        # The writer's connection: down at start or lost, it is retried with backoff.
        self.reconnect = Reconnect(self.location)
        self._closed = False
        self.translate = Translator()
        self._pool_size = read_pool_size
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._pool_lock = threading.Lock()

    # --- writer side -------------------------------------------------------------------
    def connect(self) -> psycopg.Connection[Any]:
        return connect(self.url)

    def migrate(self, conn: psycopg.Connection[Any]) -> int:
        return migrate(conn, self.translate)

    def insert(self, conn: psycopg.Connection[Any], columns: Columns, ignore: bool) -> None:
        with conn.transaction(), conn.cursor() as cur:
            if not ignore:
                copy_rows(cur, "requests", columns)
                return
            cur.execute("CREATE TEMP TABLE _distill_batch (LIKE requests) ON COMMIT DROP")
            copy_rows(cur, "_distill_batch", columns)
            cur.execute(
                f"INSERT INTO requests ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} "
                "FROM _distill_batch ON CONFLICT DO NOTHING"
            )

    def execute(
        self, conn: psycopg.Connection[Any], sql: str, params: Params
    ) -> list[tuple[Any, ...]] | None:
        try:
            cur = conn.execute(self.translate(sql), params_list(params))
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # Callers of `LogWriter.execute` handle LogStoreUnavailable, whatever the engine.
            raise LogStoreUnavailable(f"PostgreSQL {self.location}: {exc}") from exc
        if cur.description:
            return cur.fetchall()
        # DuckDB answers an UPDATE/DELETE with its row count; so does this engine.
        return [(cur.rowcount,)] if cur.rowcount >= 0 and _is_dml(sql) else None

    def is_fatal(self, exc: BaseException) -> bool:
        lost = (psycopg.OperationalError, psycopg.InterfaceError, LogStoreUnavailable)
        return isinstance(exc, lost)

    def close(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def discard(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    # --- readers -----------------------------------------------------------------------
    def _read_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        with self._pool_lock:
            if self._closed:
                raise LogStoreUnavailable("log store is closed")
            if self._pool is None:
                self._pool = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self._pool_size,
                    kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
                    configure=configure,
                    check=psycopg_pool.ConnectionPool.check_connection,
                    open=True,
                    timeout=_CONNECT_TIMEOUT,
                    name="distill-log-readers",
                )
            return self._pool

    @contextmanager
    def reader(self, conn: object = None) -> Iterator[PgCursor]:
        try:
            with self._read_pool().connection() as read_conn:
                cur = PgCursor(read_conn, self.translate)
                try:
                    yield cur
                finally:
                    cur.close()
        except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
            raise LogStoreUnavailable(f"PostgreSQL {self.location}: {exc}") from exc


def open_reader(url: str) -> PgCursor:
    """A translating cursor on its own connection (CLI commands; closing it closes both)."""
    try:
        conn = connect(url)
    except psycopg.OperationalError as exc:
        raise LogStoreUnavailable(f"PostgreSQL {redact_url(url)}: {exc}") from exc
    return PgCursor(conn, Translator(), owns_connection=True)
