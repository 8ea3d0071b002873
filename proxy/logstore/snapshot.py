"""Parquet snapshots of the request log, and read-only access when no server runs.

The trainer reads snapshots, never the live DuckDB file: the server's process owns
the file (DuckDB allows one writing process) and a training subprocess must not
hold it open. A snapshot is written to a temporary name and renamed, so a reader
never sees a half-written file.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from proxy.logstore import feedback as feedback_store
from proxy.logstore.backend import is_postgres_url
from proxy.logstore.row_filter import RowFilter
from proxy.logstore.writer import LogStoreUnavailable, LogWriter


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _copy(conn: duckdb.DuckDBPyConnection, dest: Path, rows: RowFilter) -> None:
    clause, params = rows.where(prefix="r.")
    # Training applies users' feedback (trainer/feedback.py): the latest one rides along.
    feedback_cols, feedback_join = feedback_store.snapshot_select(conn, "r")
    conn.execute(
        f"COPY (SELECT r.*, {feedback_cols} FROM requests r{feedback_join}{clause} "
        f"ORDER BY r.created_at) TO {_sql_string(str(dest))} (FORMAT parquet)",
        params,
    )


def _export_from(cur: Any, dest: Path, rows: RowFilter) -> None:
    if isinstance(cur, duckdb.DuckDBPyConnection):
        _copy(cur, dest, rows)
        return
    # A PostgreSQL cursor: its rows go through a scratch DuckDB file, then the same _copy.
    from proxy.logstore.pg_export import export_parquet

    export_parquet(cur, dest, rows, _copy)


def export_snapshot(
    source: Any,
    dest: Path | str,
    since: datetime | None = None,
    *,
    include_unstored: bool = False,
    task: str | None = None,
    exclude_tasks: tuple[str, ...] = (),
) -> Path:
    """Exports `requests` (rows created at or after `since`, if given) to a Parquet file.

    Rows a client sent with ``store: false`` are left out unless `include_unstored`:
    snapshots feed training and evaluation, which must never see them. `source` is a
    running `LogWriter` or a connection from `open_readonly` (either engine). With `task`,
    only that task's rows (a per-task run); `exclude_tasks` are never in it.
    """
    rows = RowFilter(since, include_unstored, task, tuple(exclude_tasks))
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        if isinstance(source, LogWriter):
            source.read(lambda cur: _export_from(cur, tmp, rows))
        else:
            _export_from(source, tmp, rows)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def open_readonly(db_path: Path | str) -> Any:
    """Read-only connection for CLI commands when no server owns the file; for a
    PostgreSQL URL a translating cursor on its own connection (a server may run: the
    database is shared)."""
    if is_postgres_url(db_path):
        from proxy.logstore.postgres import open_reader

        return open_reader(str(db_path))
    path = Path(db_path)
    if not path.exists():
        raise FileNotFoundError(f"no request log at {path}")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise LogStoreUnavailable(
            f"{path} is locked by another process (a running `distill serve` owns it; "
            "ask it through the admin API instead)"
        ) from exc


def open_writable(db: Path | str) -> Any:
    """A migrated connection for a short write by a CLI command (`distill train` recording
    its run) while no server owns a DuckDB file; on PostgreSQL a translating cursor."""
    if is_postgres_url(db):
        from proxy.logstore.pgsql import PgCursor, Translator
        from proxy.logstore.postgres import connect, migrate

        translator = Translator()
        pg = connect(str(db))
        migrate(pg, translator)
        return PgCursor(pg, translator, owns_connection=True)
    from proxy.logstore.schema import migrate as migrate_duckdb

    conn = duckdb.connect(str(db))
    migrate_duckdb(conn)
    return conn
