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

import duckdb

from proxy.feedback import store as feedback_store
from proxy.logstore.rows import utc_naive
from proxy.logstore.writer import LogStoreUnavailable, LogWriter


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _copy(
    conn: duckdb.DuckDBPyConnection, dest: Path, since: datetime | None, include_unstored: bool
) -> None:
    where: list[str] = []
    params: list[object] = []
    if since is not None:
        where.append("r.created_at >= ?")
        params.append(utc_naive(since))
    if not include_unstored:
        where.append("r.store IS NOT FALSE")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    # Training applies users' feedback (trainer/feedback.py): the latest one rides along.
    feedback_cols, feedback_join = feedback_store.snapshot_select(conn, "r")
    conn.execute(
        f"COPY (SELECT r.*, {feedback_cols} FROM requests r{feedback_join}{clause} "
        f"ORDER BY r.created_at) TO {_sql_string(str(dest))} (FORMAT parquet)",
        params,
    )


def export_snapshot(
    source: duckdb.DuckDBPyConnection | LogWriter,
    dest: Path | str,
    since: datetime | None = None,
    *,
    include_unstored: bool = False,
) -> Path:
    """Exports `requests` (rows created at or after `since`, if given) to a Parquet file.

    Rows a client sent with ``store: false`` are left out unless `include_unstored`:
    snapshots feed training and evaluation, which must never see them.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        if isinstance(source, LogWriter):
            source.read(lambda cur: _copy(cur, tmp, since, include_unstored))
        else:
            _copy(source, tmp, since, include_unstored)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def open_readonly(db_path: Path | str) -> duckdb.DuckDBPyConnection:
    """Read-only connection for CLI commands when no server owns the file."""
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
